//! Splits a condition into tokens, each with the 1-based column (in characters) where it
//! starts, so parse errors can point at it.

/// One token of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A name: path segment, function, enum, `and`, `or`, `not`, `true`, `false`, `nil`.
    Ident(String),
    /// A double-quoted string, unescaped.
    Str(String),
    /// An integer literal (without sign).
    Int(i64),
    /// A floating-point literal (without sign).
    Float(f64),
    /// Punctuation or an operator: `( ) [ ] , . == != < <= > >= + - * /`.
    Punct(&'static str),
    /// The end of the condition.
    End,
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("`{s}`"),
            Token::Str(s) => format!("string {s:?}"),
            Token::Int(i) => format!("number {i}"),
            Token::Float(f) => format!("number {f}"),
            Token::Punct(p) => format!("`{p}`"),
            Token::End => "the end of the condition".into(),
        }
    }
}

/// A token and the column it starts at.
pub type Spanned = (Token, usize);

/// A lexing error: column and message.
pub type LexError = (usize, String);

const PUNCT: [&str; 16] = [
    "==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", ".", "+", "-", "*", "/",
];

/// Splits `text` into tokens, ending with [`Token::End`].
pub fn tokenize(text: &str) -> Result<Vec<Spanned>, LexError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Token::Ident(chars[start..i].iter().collect()), col));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let mut is_float = false;
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                is_float = true;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    is_float = true;
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let token = if is_float {
                text.parse().map(Token::Float).ok()
            } else {
                text.parse().map(Token::Int).ok()
            };
            match token {
                Some(t) => out.push((t, col)),
                None => return Err((col, format!("number {text} is out of range"))),
            }
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err((col, "unterminated string".into())),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let escaped = match chars.get(i + 1) {
                            Some('"') => '"',
                            Some('\\') => '\\',
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some(other) => {
                                // Kept as written, so regexps like "\d" need no doubling.
                                s.push('\\');
                                *other
                            }
                            None => return Err((col, "unterminated string".into())),
                        };
                        s.push(escaped);
                        i += 2;
                    }
                    Some(other) => {
                        s.push(*other);
                        i += 1;
                    }
                }
            }
            out.push((Token::Str(s), col));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            match PUNCT.iter().find(|p| rest.starts_with(**p)) {
                Some(p) => {
                    out.push((Token::Punct(p), col));
                    i += p.len();
                }
                None => return Err((col, format!("unexpected character {c:?}"))),
            }
        }
    }
    out.push((Token::End, chars.len() + 1));
    Ok(out)
}
