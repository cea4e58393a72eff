//! Editing operations on a workflow value, each keeping it valid or returning a typed error.
