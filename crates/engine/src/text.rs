//! Turning token pieces (bytes) into the text a client sees: whole UTF-8 characters only, and
//! never any part of a stop string. Hand-written because it sits between llama.cpp's byte
//! pieces and the stop-string rule; no crate does exactly this.

/// Accumulates token pieces and releases text that is safe to emit.
#[derive(Debug, Default)]
pub(crate) struct TextStream {
    /// Bytes of a character that is not complete yet.
    partial: Vec<u8>,
    /// Decoded text held back because it could be the start of a stop string.
    held: String,
    stops: Vec<String>,
}

/// What one push produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Emitted {
    pub text: String,
    /// A stop string matched; the text before it has been emitted and generation should end.
    pub stopped: bool,
}

impl TextStream {
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            ..Self::default()
        }
    }

    /// Adds the bytes of one token and returns the text now safe to emit.
    pub(crate) fn push(&mut self, piece: &[u8]) -> Emitted {
        self.partial.extend_from_slice(piece);
        self.decode_partial();
        if let Some(at) = self.first_stop() {
            let text = self.held[..at].to_owned();
            self.held.clear();
            self.partial.clear();
            return Emitted {
                text,
                stopped: true,
            };
        }
        let keep = self.stop_prefix_suffix_len();
        let cut = self.held.len() - keep;
        let text = self.held[..cut].to_owned();
        self.held.drain(..cut);
        Emitted {
            text,
            stopped: false,
        }
    }

    /// Everything still held, at the end of a generation. Incomplete characters become U+FFFD.
    pub(crate) fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(&String::from_utf8_lossy(&self.partial));
        self.partial.clear();
        text
    }

    /// Moves every complete character from `partial` to `held`; invalid bytes become U+FFFD.
    fn decode_partial(&mut self) {
        loop {
            match std::str::from_utf8(&self.partial) {
                Ok(s) => {
                    self.held.push_str(s);
                    self.partial.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix up to `valid` is UTF-8 by construction.
                    self.held
                        .push_str(std::str::from_utf8(&self.partial[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.partial.drain(..valid);
                            return;
                        }
                        Some(bad) => {
                            self.held.push(char::REPLACEMENT_CHARACTER);
                            self.partial.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    fn first_stop(&self) -> Option<usize> {
        self.stops.iter().filter_map(|s| self.held.find(s)).min()
    }

    /// Length of the longest suffix of `held` that is a proper prefix of some stop string.
    fn stop_prefix_suffix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for (i, _) in stop.char_indices().skip(1) {
                let prefix = &stop[..i];
                if i > best && self.held.ends_with(prefix) {
                    best = i;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_splits_a_character() {
        let mut s = TextStream::new(vec![]);
        let bytes = "退款".as_bytes();
        assert_eq!(s.push(&bytes[..2]).text, "");
        assert_eq!(s.push(&bytes[2..4]).text, "退");
        assert_eq!(s.push(&bytes[4..]).text, "款");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = TextStream::new(vec![]);
        assert_eq!(s.push(&[b'a', 0xff, b'b']).text, "a\u{fffd}b");
        s.push(&[0xe9, 0x80]);
        assert_eq!(s.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_string_across_pieces_is_never_emitted() {
        let mut s = TextStream::new(vec!["\nUser:".into()]);
        assert_eq!(s.push(b"Hello").text, "Hello");
        assert_eq!(s.push(b"\nUs").text, "");
        let e = s.push(b"er: hi");
        assert_eq!(
            e,
            Emitted {
                text: "".into(),
                stopped: true
            }
        );
    }

    #[test]
    fn held_text_is_released_when_it_stops_matching() {
        let mut s = TextStream::new(vec!["END".into()]);
        assert_eq!(s.push(b"the E").text, "the ");
        assert_eq!(s.push(b"ND").text, "");
        let mut s = TextStream::new(vec!["END".into()]);
        assert_eq!(s.push(b"the E").text, "the ");
        assert_eq!(s.push(b"gg").text, "Egg");
        assert_eq!(s.push(b" E").text, " ");
        assert_eq!(s.finish(), "E");
    }

    #[test]
    fn earliest_stop_wins() {
        let mut s = TextStream::new(vec!["b".into(), "a".into()]);
        assert_eq!(
            s.push(b"xaby"),
            Emitted {
                text: "x".into(),
                stopped: true
            }
        );
    }
}
