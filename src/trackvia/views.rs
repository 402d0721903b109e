//! The streaming check of a `GET /openapi/views` answer: is the body one JSON
//! array? It reads the body chunk by chunk and keeps nothing but the state of
//! a small push-down automaton (at most [`MAX_DEPTH`] open containers) and a
//! count of the array's elements, so a large account's list of views, however
//! many megabytes, is checked in constant memory, and a body that is not JSON
//! is refused at its first wrong byte.

/// Deepest nesting accepted (a view is an object two or three levels down).
pub const MAX_DEPTH: usize = 64;

/// Why a body is not a JSON array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewListError {
    /// The first value is not an array.
    #[error("the body is not a JSON list")]
    NotAnArray,
    /// Not JSON: an unexpected byte at this offset.
    #[error("the body is not JSON (byte {at})")]
    Syntax {
        /// Offset of the offending byte in the body.
        at: u64,
    },
    /// More than [`MAX_DEPTH`] nested containers.
    #[error("the body nests deeper than a list of views")]
    TooDeep,
    /// The body ended inside the array.
    #[error("the body ends inside the list")]
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Number {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the top-level array.
    Start,
    /// A value is expected; `or_close` when `]` may end an empty array instead.
    Value { or_close: bool },
    /// After a value: `,` or the end of the enclosing container.
    After,
    /// An object key is expected; `or_close` when `}` may end an empty object.
    Key { or_close: bool },
    /// `:` after a key.
    Colon,
    /// Inside a string (`key` when it is an object key).
    Str { key: bool, escape: Escape },
    /// Inside a number.
    Num(Number),
    /// Inside `true`, `false` or `null`: the bytes still expected.
    Literal { rest: &'static [u8] },
    /// The array is closed; only whitespace may follow.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Plain characters.
    None,
    /// After `\`.
    Backslash,
    /// In `\uXXXX`: hex digits read so far and their value.
    Unicode { digits: u8, value: u16 },
}

/// The streaming checker; feed it the body, then [`ViewList::finish`].
#[derive(Clone, Debug)]
pub struct ViewList {
    state: State,
    stack: Vec<Container>,
    /// Elements of the top-level array seen so far.
    count: u64,
    /// Bytes read so far.
    offset: u64,
    /// UTF-8 continuation bytes still expected inside a string, and the range
    /// the next one must fall in (which excludes overlong forms and surrogates).
    utf8: (u8, u8, u8),
    /// A high surrogate escape waiting for its low half.
    high_surrogate: bool,
}

impl Default for ViewList {
    fn default() -> Self {
        ViewList::new()
    }
}

impl ViewList {
    /// A checker at the start of a body.
    pub fn new() -> Self {
        ViewList {
            state: State::Start,
            stack: Vec::with_capacity(8),
            count: 0,
            offset: 0,
            utf8: (0, 0, 0),
            high_surrogate: false,
        }
    }

    /// Check the next part of the body.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ViewListError> {
        for &byte in chunk {
            self.byte(byte)?;
            self.offset += 1;
        }
        Ok(())
    }

    /// The body has ended: the number of elements of the array.
    pub fn finish(self) -> Result<u64, ViewListError> {
        match self.state {
            State::Done => Ok(self.count),
            State::Start => Err(ViewListError::NotAnArray),
            _ => Err(ViewListError::Truncated),
        }
    }

    /// Check a whole body at once.
    pub fn check(body: &[u8]) -> Result<u64, ViewListError> {
        let mut list = ViewList::new();
        list.feed(body)?;
        list.finish()
    }

    fn syntax(&self) -> ViewListError {
        ViewListError::Syntax { at: self.offset }
    }

    fn byte(&mut self, b: u8) -> Result<(), ViewListError> {
        let ws = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        match self.state {
            State::Start => match b {
                _ if ws => Ok(()),
                b'[' => self.open(Container::Array),
                _ => Err(ViewListError::NotAnArray),
            },
            State::Done if ws => Ok(()),
            State::Done => Err(self.syntax()),
            State::Value { or_close } => match b {
                _ if ws => Ok(()),
                b']' if or_close => self.close(Container::Array),
                _ => self.value(b),
            },
            State::After => match (b, self.stack.last()) {
                _ if ws => Ok(()),
                (b',', Some(Container::Array)) => {
                    self.state = State::Value { or_close: false };
                    Ok(())
                }
                (b',', Some(Container::Object)) => {
                    self.state = State::Key { or_close: false };
                    Ok(())
                }
                (b']', Some(Container::Array)) => self.close(Container::Array),
                (b'}', Some(Container::Object)) => self.close(Container::Object),
                _ => Err(self.syntax()),
            },
            State::Key { or_close } => match b {
                _ if ws => Ok(()),
                b'"' => {
                    self.state = State::Str {
                        key: true,
                        escape: Escape::None,
                    };
                    Ok(())
                }
                b'}' if or_close => self.close(Container::Object),
                _ => Err(self.syntax()),
            },
            State::Colon => match b {
                _ if ws => Ok(()),
                b':' => {
                    self.state = State::Value { or_close: false };
                    Ok(())
                }
                _ => Err(self.syntax()),
            },
            State::Str { key, escape } => self.string(b, key, escape),
            State::Num(n) => self.number(b, n),
            State::Literal { rest } => match rest.split_first() {
                Some((&want, rest)) if want == b => {
                    self.state = if rest.is_empty() {
                        State::After
                    } else {
                        State::Literal { rest }
                    };
                    Ok(())
                }
                _ => Err(self.syntax()),
            },
        }
    }

    /// The first byte of a value.
    fn value(&mut self, b: u8) -> Result<(), ViewListError> {
        if self.stack.len() == 1 {
            self.count += 1;
        }
        self.state = match b {
            b'[' => return self.open(Container::Array),
            b'{' => return self.open(Container::Object),
            b'"' => State::Str {
                key: false,
                escape: Escape::None,
            },
            b'-' => State::Num(Number::Minus),
            b'0' => State::Num(Number::Zero),
            b'1'..=b'9' => State::Num(Number::Int),
            b't' => State::Literal { rest: b"rue" },
            b'f' => State::Literal { rest: b"alse" },
            b'n' => State::Literal { rest: b"ull" },
            _ => return Err(self.syntax()),
        };
        Ok(())
    }

    fn open(&mut self, c: Container) -> Result<(), ViewListError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(ViewListError::TooDeep);
        }
        self.stack.push(c);
        self.state = match c {
            Container::Array => State::Value { or_close: true },
            Container::Object => State::Key { or_close: true },
        };
        Ok(())
    }

    fn close(&mut self, c: Container) -> Result<(), ViewListError> {
        if self.stack.pop() != Some(c) {
            return Err(self.syntax());
        }
        if c == Container::Array && self.stack.is_empty() {
            self.state = State::Done;
        } else {
            self.state = State::After;
        }
        Ok(())
    }

    fn string(&mut self, b: u8, key: bool, escape: Escape) -> Result<(), ViewListError> {
        let (need, lo, hi) = self.utf8;
        if need > 0 {
            if !(lo..=hi).contains(&b) {
                return Err(self.syntax());
            }
            self.utf8 = (need - 1, 0x80, 0xBF);
            return Ok(());
        }
        let next = match (escape, b) {
            (Escape::None, b'"') if !self.high_surrogate => {
                self.state = if key { State::Colon } else { State::After };
                return Ok(());
            }
            (Escape::None, b'\\') => Escape::Backslash,
            // A high surrogate must be followed at once by `\u` and a low one.
            _ if self.high_surrogate && escape == Escape::None => return Err(self.syntax()),
            (Escape::None, 0x00..=0x1F) => return Err(self.syntax()),
            (Escape::None, 0x00..=0x7F) => Escape::None,
            (Escape::None, _) => {
                self.utf8 = match b {
                    0xC2..=0xDF => (1, 0x80, 0xBF),
                    0xE0 => (2, 0xA0, 0xBF),
                    0xED => (2, 0x80, 0x9F),
                    0xE1..=0xEF => (2, 0x80, 0xBF),
                    0xF0 => (3, 0x90, 0xBF),
                    0xF1..=0xF3 => (3, 0x80, 0xBF),
                    0xF4 => (3, 0x80, 0x8F),
                    _ => return Err(self.syntax()),
                };
                Escape::None
            }
            (Escape::Backslash, b'u') => Escape::Unicode {
                digits: 0,
                value: 0,
            },
            (Escape::Backslash, _) if self.high_surrogate => return Err(self.syntax()),
            (Escape::Backslash, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                Escape::None
            }
            (Escape::Backslash, _) => return Err(self.syntax()),
            (Escape::Unicode { digits, value }, _) => {
                let digit = (b as char).to_digit(16).ok_or_else(|| self.syntax())?;
                let value = (value << 4) | digit as u16;
                if digits < 3 {
                    Escape::Unicode {
                        digits: digits + 1,
                        value,
                    }
                } else {
                    let low = (0xDC00..=0xDFFF).contains(&value);
                    if low != self.high_surrogate {
                        return Err(self.syntax());
                    }
                    self.high_surrogate = (0xD800..=0xDBFF).contains(&value);
                    Escape::None
                }
            }
        };
        self.state = State::Str { key, escape: next };
        Ok(())
    }

    fn number(&mut self, b: u8, n: Number) -> Result<(), ViewListError> {
        let digit = b.is_ascii_digit();
        let next = match (n, b) {
            (Number::Minus, b'0') => Number::Zero,
            (Number::Minus, _) if digit => Number::Int,
            (Number::Int, _) if digit => Number::Int,
            (Number::Zero | Number::Int, b'.') => Number::Dot,
            (Number::Zero | Number::Int | Number::Frac, b'e' | b'E') => Number::Exp,
            (Number::Dot | Number::Frac, _) if digit => Number::Frac,
            (Number::Exp, b'+' | b'-') => Number::ExpSign,
            (Number::Exp | Number::ExpSign | Number::ExpDigits, _) if digit => Number::ExpDigits,
            // The number ended: the byte belongs to what follows it.
            (Number::Zero | Number::Int | Number::Frac | Number::ExpDigits, _) => {
                self.state = State::After;
                return self.byte(b);
            }
            _ => return Err(self.syntax()),
        };
        self.state = State::Num(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
