//! Validated values: each is parsed once, at the edge, and is valid wherever it appears afterwards.

/// Largest quantity of one product in one order.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Largest stock level (or stock change) the API accepts; far beyond any real warehouse, far below overflow.
pub const MAX_STOCK: i64 = 1_000_000_000_000;

/// Unicode's format characters (general category Cf, Unicode 16.0): invisible, yet they change how the text
/// around them is shown (bidirectional controls), split or joined (zero-width characters) or compared.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

fn is_format(c: char) -> bool {
    FORMAT.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// The bidirectional controls: they reorder what is displayed around them (a name that reads as another).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Which invisible characters a text refuses besides the control characters and the line and paragraph
/// separators (U+2028, U+2029), which every text refuses.
#[derive(Clone, Copy)]
enum Invisible {
    /// Identifiers: every format character, so that what is shown is what is stored and compared.
    Refused,
    /// Prose (names, descriptions, notes): the bidirectional controls; the zero-width joiner of emoji
    /// sequences and the other joiners stay.
    BidiRefused,
}

fn text(
    value: String,
    max_chars: usize,
    what: &str,
    invisible: Invisible,
) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(format!("{what} must be at most {max_chars} characters"));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(format!(
            "{what} must not contain control characters or line breaks"
        ));
    }
    let refused = match invisible {
        Invisible::Refused => trimmed.chars().find(|&c| is_format(c)),
        Invisible::BidiRefused => trimmed.chars().find(|&c| is_bidi_control(c)),
    };
    if let Some(c) = refused {
        return Err(format!(
            "{what} must not contain invisible formatting characters (found U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr, $invisible:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(value: String) -> Result<Self, String> {
                text(value, $max, $what, $invisible).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

text_value!(
    /// A product's display name.
    ProductName, 200, "name", Invisible::BidiRefused
);
text_value!(
    /// A product's free-text description.
    Description, 2000, "description", Invisible::BidiRefused
);
text_value!(
    /// The client's own reference for an order (e.g. its customer or cart id).
    CustomerRef, 255, "customer_ref", Invisible::Refused
);
text_value!(
    /// Free text explaining a stock adjustment.
    Note, 500, "note", Invisible::BidiRefused
);

/// Stock keeping unit: 1 to 64 characters of letters, digits, `-`, `_`, `.` and `/`. Case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(value: String) -> Result<Self, String> {
        if value.is_empty() {
            return Err("sku must not be empty".to_owned());
        }
        if value.len() > Self::MAX_CHARS {
            return Err(format!(
                "sku must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        {
            return Err("sku may contain only letters, digits, '-', '_', '.' and '/'".to_owned());
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A price in minor units of its currency (cents for EUR): never negative, never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceMinor(i64);

impl PriceMinor {
    pub fn parse(value: i64) -> Result<Self, String> {
        if value < 0 {
            return Err("price_minor must not be negative".to_owned());
        }
        Ok(Self(value))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A quantity of one product in an order: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(value: i64) -> Result<Self, String> {
        if !(1..=MAX_QUANTITY).contains(&value) {
            return Err(format!("quantity must be between 1 and {MAX_QUANTITY}"));
        }
        Ok(Self(value))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A stock level or threshold: 0 to [`MAX_STOCK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLevel(i64);

impl StockLevel {
    pub fn parse(value: i64) -> Result<Self, String> {
        if !(0..=MAX_STOCK).contains(&value) {
            return Err(format!("must be between 0 and {MAX_STOCK}"));
        }
        Ok(Self(value))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// The `If-Match` precondition of a conditional update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version.
    Any,
    /// One of these versions. Unparseable or weak tags never match (If-Match uses strong comparison).
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Parses the header value: `*` or a comma-separated list of entity tags such as `"3"`.
    pub fn parse(header: &str) -> Self {
        if header.trim() == "*" {
            return Self::Any;
        }
        Self::Versions(
            header
                .split(',')
                .filter_map(|tag| {
                    tag.trim()
                        .strip_prefix('"')?
                        .strip_suffix('"')?
                        .parse()
                        .ok()
                })
                .collect(),
        )
    }

    pub fn matches(&self, version: i64) -> bool {
        match self {
            Self::Any => true,
            Self::Versions(versions) => versions.contains(&version),
        }
    }
}

/// The entity tag of a product version, as sent in `ETag`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ProductName::parse("  Mug ".into()).unwrap().as_str(), "Mug");
        assert!(ProductName::parse("   ".into()).is_err());
        assert!(ProductName::parse("a".repeat(201)).is_err());
        assert!(ProductName::parse("a".repeat(200)).is_ok());
        assert!(ProductName::parse("bad\u{0}name".into()).is_err());
    }

    #[test]
    fn skus_allow_a_conservative_alphabet() {
        assert!(Sku::parse("MUG-01_blue.v2/xl".into()).is_ok());
        assert!(Sku::parse("".into()).is_err());
        assert!(Sku::parse("with space".into()).is_err());
        assert!(Sku::parse("é".into()).is_err());
        assert!(Sku::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn quantities_are_between_one_and_a_million() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-1).is_err());
        assert!(Quantity::parse(1_000_001).is_err());
        assert_eq!(Quantity::parse(1_000_000).unwrap().get(), 1_000_000);
    }

    #[test]
    fn prices_are_never_negative() {
        assert!(PriceMinor::parse(-1).is_err());
        assert_eq!(PriceMinor::parse(0).unwrap().get(), 0);
    }

    #[test]
    fn stock_levels_are_bounded() {
        assert!(StockLevel::parse(-1).is_err());
        assert!(StockLevel::parse(MAX_STOCK + 1).is_err());
        assert!(StockLevel::parse(MAX_STOCK).is_ok());
    }

    #[test]
    fn if_match_compares_strong_tags_only() {
        assert!(IfMatch::parse("*").matches(7));
        assert!(IfMatch::parse("\"3\", \"7\"").matches(7));
        assert!(!IfMatch::parse("W/\"7\"").matches(7));
        assert!(!IfMatch::parse("7").matches(7));
        assert!(!IfMatch::parse("\"6\"").matches(7));
        assert_eq!(etag(7), "\"7\"");
    }
}

#[cfg(test)]
mod invisible_tests {
    use super::*;

    /// Right-to-left override, zero-width space, line separator, byte-order mark, word joiner, a tag character.
    const HOSTILE: [char; 6] = [
        '\u{202E}',
        '\u{200B}',
        '\u{2028}',
        '\u{FEFF}',
        '\u{2060}',
        '\u{E0041}',
    ];

    #[test]
    fn identifiers_refuse_every_invisible_character() {
        for c in HOSTILE
            .into_iter()
            .chain(['\u{200D}', '\u{00AD}', '\u{2066}'])
        {
            let value = format!("cart{c}42");
            let error = CustomerRef::parse(value.clone()).unwrap_err();
            assert!(
                error.starts_with("customer_ref must not contain"),
                "{c:?}: {error}"
            );
            assert!(Sku::parse(value).is_err(), "{c:?} in a sku");
        }
        assert!(CustomerRef::parse("cart-42 (Zoë)".into()).is_ok());
    }

    #[test]
    fn prose_refuses_the_bidi_controls_and_keeps_emoji() {
        for c in [
            '\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}', '\u{200F}', '\u{061C}', '\u{2028}',
        ] {
            let error = ProductName::parse(format!("Mug{c}gum")).unwrap_err();
            assert!(error.starts_with("name must not contain"), "{c:?}: {error}");
            assert!(
                Note::parse(format!("re{c}count")).is_err(),
                "{c:?} in a note"
            );
        }
        // A family (ZWJ sequence), a flag (regional indicators), a skin tone, a variation selector.
        for name in [
            "Mug 👨\u{200D}👩\u{200D}👧",
            "Flag 🇫🇷",
            "Wave 👋🏽",
            "Heart ❤\u{FE0F}",
        ] {
            assert_eq!(ProductName::parse(name.to_owned()).unwrap().as_str(), name);
        }
    }

    #[test]
    fn the_format_table_is_sorted_and_covers_what_it_names() {
        assert!(FORMAT.windows(2).all(|w| w[0].1 < w[1].0));
        for c in HOSTILE.into_iter().filter(|&c| c != '\u{2028}') {
            assert!(is_format(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '\u{200D}', '\u{FE0F}', '👋'] {
            assert_eq!(is_format(c), c == '\u{200D}', "{c:?}");
        }
    }
}
