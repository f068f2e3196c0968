//! Cuts a stream of tokens into sentences, so speech can start on the first sentence while
//! the model is still writing the rest.
//!
//! A sentence ends at `.`, `!`, `?` or `…` followed by white space, or at a line break; a
//! period after a short abbreviation (`Dr.`, `e.g.`) or inside a number (`3.5`) does not
//! end one. A sentence shorter than `min_chars` waits for the next, so "Hi." does not go to
//! speech alone unless it is all there is.

/// Abbreviations whose period does not end a sentence (compared without case).
const ABBREVIATIONS: &[&str] = &["mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "e.g.", "i.e.", "etc.", "no.", "approx."];

/// The incremental splitter.
#[derive(Debug, Clone)]
pub struct Splitter {
    pending: String,
    min_chars: usize,
}

impl Splitter {
    /// A splitter that emits sentences of at least `min_chars` characters.
    pub fn new(min_chars: usize) -> Self {
        Splitter { pending: String::new(), min_chars }
    }

    /// Adds a token; returns the sentences it completed, trimmed.
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.pending.push_str(token);
        let mut sentences = Vec::new();
        let mut searched = 0;
        while let Some(end) = self.boundary(searched) {
            let sentence = self.pending[..end].trim().to_owned();
            if sentence.chars().count() < self.min_chars {
                searched = end;
                continue;
            }
            self.pending.drain(..end);
            searched = 0;
            sentences.push(sentence);
        }
        sentences
    }

    /// The rest, at the end of the answer (`None` when only white space is left).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Drops what has not been emitted (the answer was cut off).
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// The byte index just past the first sentence end at or after `from`.
    fn boundary(&self, from: usize) -> Option<usize> {
        let text = &self.pending;
        let mut chars = text[from..].char_indices().map(|(at, c)| (at + from, c)).peekable();
        while let Some((at, c)) = chars.next() {
            let after = at + c.len_utf8();
            match c {
                '\n' => return Some(after),
                '.' | '!' | '?' | '…' => {
                    // Only a following white space proves the end: "3.5" and "e.g." wait.
                    let &(_, next) = chars.peek()?;
                    if !next.is_whitespace() {
                        continue;
                    }
                    if c == '.' && ends_with_abbreviation(&text[..after]) {
                        continue;
                    }
                    return Some(after);
                }
                _ => {}
            }
        }
        None
    }
}

fn ends_with_abbreviation(text: &str) -> bool {
    let word = text.rsplit(char::is_whitespace).next().unwrap_or_default().to_lowercase();
    ABBREVIATIONS.contains(&word.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(tokens: &[&str], min_chars: usize) -> Vec<String> {
        let mut splitter = Splitter::new(min_chars);
        let mut out: Vec<String> = tokens.iter().flat_map(|token| splitter.push(token)).collect();
        out.extend(splitter.finish());
        out
    }

    #[test]
    fn sentences_come_out_as_soon_as_they_end() {
        let mut splitter = Splitter::new(1);
        assert!(splitter.push("Hello the").is_empty());
        assert!(splitter.push("re.").is_empty(), "the period may still be part of something");
        assert_eq!(splitter.push(" How"), vec!["Hello there.".to_owned()]);
        assert_eq!(splitter.push(" are you? I"), vec!["How are you?".to_owned()]);
        assert_eq!(splitter.finish(), Some("I".to_owned()));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn numbers_abbreviations_and_short_sentences_wait() {
        assert_eq!(split(&["It costs 3.5 dollars. Dr. Smith agrees."], 1), vec!["It costs 3.5 dollars.", "Dr. Smith agrees."]);
        assert_eq!(split(&["Yes. ", "I can help with that. ", "Ok"], 8), vec!["Yes. I can help with that.", "Ok"]);
        assert_eq!(split(&["Wait…", " what!", "\n", "Line two"], 1), vec!["Wait…", "what!", "Line two"]);
        assert_eq!(split(&["   "], 1), Vec::<String>::new());
    }

    #[test]
    fn reset_drops_the_unspoken_rest() {
        let mut splitter = Splitter::new(1);
        assert!(splitter.push("Half a sent").is_empty());
        splitter.reset();
        assert!(splitter.push("New. ").len() == 1);
    }
}
