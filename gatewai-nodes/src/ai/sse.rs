//! A small server-sent-events parser: bytes in (in whatever chunks the network delivers them),
//! events out. Handles `\n`, `\r\n` and `\r` line ends (also split across chunks), multi-line
//! `data:` fields, comments, `event:` names, and a last event without a closing blank line.

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, if any.
    pub(crate) event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
}

/// Turns a byte stream into [`SseEvent`]s.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no line end: a long line arriving in many chunks is
    /// searched once, not again from its start for every chunk.
    scanned: usize,
    data: String,
    has_data: bool,
    event: Option<String>,
    max_line: usize,
}

/// A line longer than the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineTooLong(pub(crate) usize);

impl SseParser {
    /// A parser that refuses lines longer than `max_line` bytes.
    pub(crate) fn new(max_line: usize) -> Self {
        SseParser {
            max_line,
            ..Self::default()
        }
    }

    /// Feeds a chunk; returns the events it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let events = self.drain(false);
        if self.buf.len() > self.max_line {
            return Err(LineTooLong(self.max_line));
        }
        Ok(events)
    }

    /// Ends the stream; returns the events still pending (a last event without a blank line).
    pub(crate) fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = self.drain(true);
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, &mut events);
        }
        self.scanned = 0;
        self.line(b"", &mut events);
        events
    }

    fn drain(&mut self, at_end: bool) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut start = 0;
        // Where the search resumes: past what earlier calls found no line end in.
        let mut from = self.scanned.min(self.buf.len());
        let mut searched = self.buf.len();
        while let Some(offset) = self.buf[from..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
        {
            let end = from + offset;
            let next = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    // A `\r` at the end of the buffer may be the first half of `\r\n`.
                    None if at_end => end + 1,
                    None => {
                        searched = end;
                        break;
                    }
                }
            } else {
                end + 1
            };
            let line = self.buf[start..end].to_vec();
            self.line(&line, &mut events);
            start = next;
            from = next;
        }
        self.buf.drain(..start);
        self.scanned = searched - start;
        events
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                events.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
                self.has_data = false;
            }
            self.event = None;
            return;
        }
        let line = String::from_utf8_lossy(line);
        let line = line.strip_prefix('\u{feff}').unwrap_or(&line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(input: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new(1 << 20);
        let mut events = Vec::new();
        for piece in input.chunks(chunk) {
            events.extend(parser.push(piece).unwrap());
        }
        events.extend(parser.finish());
        events
    }

    #[test]
    fn events_survive_any_chunking_and_line_ending() {
        let input = "data: {\"a\":1}\r\n\r\n: comment\r\nevent: delta\r\ndata: line one\r\ndata:line two\r\n\r\ndata: é ü\n\ndata: last\rdata: cr\r\r";
        let expected = vec![
            SseEvent {
                event: None,
                data: "{\"a\":1}".into(),
            },
            SseEvent {
                event: Some("delta".into()),
                data: "line one\nline two".into(),
            },
            SseEvent {
                event: None,
                data: "é ü".into(),
            },
            SseEvent {
                event: None,
                data: "last\ncr".into(),
            },
        ];
        for chunk in 1..input.len() {
            assert_eq!(
                parse_in_chunks(input.as_bytes(), chunk),
                expected,
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn last_event_without_blank_line_is_delivered() {
        assert_eq!(
            parse_in_chunks(b"data: [DONE]", 4),
            vec![SseEvent {
                event: None,
                data: "[DONE]".into()
            }]
        );
        assert!(parse_in_chunks(b"\r\n\r\n: ping\n\n", 3).is_empty());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = SseParser::new(16);
        assert!(parser.push(b"data: 0123456789").is_ok());
        assert_eq!(parser.push(b"abcdef"), Err(LineTooLong(16)));
    }
}
