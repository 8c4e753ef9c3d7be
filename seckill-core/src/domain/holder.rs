//! Real-name ticket holders (实名制, docs/adr/0021): each ticket of a real-name session names
//! the person who will use it, by name and identity document, and one document holds at most
//! one ticket per session.
//!
//! A buyer gives a [`HolderInput`], with the document number in the clear. The engine checks
//! it and seals it with the deployment's [`DocumentKey`] into a [`Holder`] before any backend,
//! broker, log or metric sees it: the number is kept only as a keyed hash (HMAC-SHA256, which
//! nobody without the key can test guesses against) and a masked form for its owner to
//! recognise (`110***********123X`). The hash is what the stock backend's atomic step and the
//! database's unique key compare.

use super::text::check_line;
use crate::{Error, Result};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The kind of identity document a holder names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// Resident identity card of the PRC (身份证): 18 characters, 17 digits and a check
    /// character (a digit or `X`, ISO 7064 MOD 11-2).
    IdCard,
    /// Passport: 5 to 20 letters and digits.
    Passport,
    /// Mainland travel permit for Hong Kong and Macao residents (回乡证): 5 to 20 letters and
    /// digits.
    HkMacaoPermit,
    /// Mainland travel permit for Taiwan residents (台胞证): 5 to 20 letters and digits.
    TaiwanPermit,
}

impl IdType {
    /// Every kind, in a fixed order.
    pub const ALL: [IdType; 4] = [
        IdType::IdCard,
        IdType::Passport,
        IdType::HkMacaoPermit,
        IdType::TaiwanPermit,
    ];

    /// Its short code in backends' compact records (`ic`, `pp`, `hm`, `tw`).
    pub fn code(self) -> &'static str {
        match self {
            IdType::IdCard => "ic",
            IdType::Passport => "pp",
            IdType::HkMacaoPermit => "hm",
            IdType::TaiwanPermit => "tw",
        }
    }

    /// The kind of a [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<IdType> {
        IdType::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// A ticket holder as the buyer names them: the document number in the clear. `Debug` never
/// prints the number; nothing stores this type (the engine seals it first).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HolderInput {
    /// The holder's name as on the document: 1 to 64 characters, none of `| # ; : ,` and no
    /// control characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
    /// The document's kind.
    pub id_type: IdType,
    /// The document's number (spaces around it are ignored, letters are read as capitals).
    /// Only a JSON string: another type is refused without repeating the value.
    #[cfg_attr(feature = "openapi", schema(min_length = 5, max_length = 20))]
    #[serde(deserialize_with = "number_text")]
    pub id_number: String,
}

/// Reads a document number as a string, refusing any other type with a message that does not
/// repeat the value (serde's own would: "invalid type: integer `110105…`").
fn number_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a document number as a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<String, E> {
            Err(E::custom("holders.id_number must be a string"))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<String, E> {
            Err(E::custom("holders.id_number must be a string"))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<String, E> {
            Err(E::custom("holders.id_number must be a string"))
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> std::result::Result<String, E> {
            Err(E::custom("holders.id_number must be a string"))
        }
        fn visit_i128<E: serde::de::Error>(self, _: i128) -> std::result::Result<String, E> {
            Err(E::custom("holders.id_number must be a string"))
        }
    }
    d.deserialize_any(Text)
}

impl fmt::Debug for HolderInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HolderInput")
            .field("name", &self.name)
            .field("id_type", &self.id_type)
            .field("id_number", &"<redacted>")
            .finish()
    }
}

/// A ticket holder as kept: name, document kind, the number masked for display, and the
/// number's keyed hash, which stands for the document wherever documents are compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The holder's name.
    pub name: String,
    /// The document's kind.
    pub id_type: IdType,
    /// The number with all but its first and last characters hidden (`110***********123X`).
    pub id_masked: String,
    /// HMAC-SHA256 of the kind and number under the deployment's [`DocumentKey`], 32 hex
    /// digits: equal for the same document, useless without the key.
    pub id_hash: String,
}

/// Most characters in a holder's name.
pub const NAME_MAX: usize = 64;
/// Characters a holder's name may not have (the backends' compact records use them).
pub const NAME_FORBIDDEN: &[char] = &['|', '#', ';', ':', ','];

/// The key of the document hashes: one per deployment, shared by every process, kept like a
/// password (`Debug` does not print it). A hash made under another key never matches, so
/// changing it lets a document that holds a ticket buy another in a live session.
#[derive(Clone)]
pub struct DocumentKey(Arc<[u8]>);

impl fmt::Debug for DocumentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DocumentKey(<redacted>)")
    }
}

impl DocumentKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key of at least [`MIN_LEN`](Self::MIN_LEN) bytes.
    pub fn new(key: impl AsRef<[u8]>) -> Result<Self> {
        let key = key.as_ref();
        if key.len() < Self::MIN_LEN {
            return Err(Error::invalid(format!(
                "the document key must have at least {} bytes",
                Self::MIN_LEN
            )));
        }
        Ok(Self(key.into()))
    }

    /// A random key, for one process alone (its hashes match nobody else's, nor its own after
    /// a restart).
    pub fn random() -> Self {
        Self(rand::random::<[u8; 32]>().to_vec().into())
    }

    /// The keyed hash of a document (`number` as [`normalise`] leaves it).
    pub fn hash(&self, id_type: IdType, number: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"seckill-document-v1\0");
        mac.update(id_type.code().as_bytes());
        mac.update(b"\0");
        mac.update(number.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Checks a holder ([`check_holder`]) and seals it: the number hashed and masked, the
    /// clear number dropped.
    pub fn seal(&self, h: &HolderInput) -> Result<Holder> {
        let number = check_holder(h)?;
        Ok(Holder {
            name: h.name.trim().to_string(),
            id_type: h.id_type,
            id_masked: mask(h.id_type, &number),
            id_hash: self.hash(h.id_type, &number),
        })
    }
}

/// A document number as it is hashed: spaces around it dropped, letters in capitals.
pub fn normalise(number: &str) -> String {
    number.trim().to_ascii_uppercase()
}

/// The rules of a holder, returning the normalised number: a name of 1 to [`NAME_MAX`]
/// characters without [`NAME_FORBIDDEN`] or control characters, and a number of the kind's
/// form (an ID card's check character must be right). The errors never repeat the number.
pub fn check_holder(h: &HolderInput) -> Result<String> {
    let name = h.name.trim();
    check_line("holders.name", name, 1, NAME_MAX)?;
    if name.contains(NAME_FORBIDDEN) {
        return Err(Error::invalid(
            "holders.name: the characters | # ; : , are not allowed",
        ));
    }
    let n = normalise(&h.id_number);
    match h.id_type {
        IdType::IdCard => {
            let b = n.as_bytes();
            if b.len() != 18
                || !b[..17].iter().all(u8::is_ascii_digit)
                || !(b[17].is_ascii_digit() || b[17] == b'X')
            {
                return Err(Error::invalid(
                    "holders.id_number: an ID card number has 17 digits and a check digit or X",
                ));
            }
            const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
            let sum: u32 = b[..17]
                .iter()
                .zip(WEIGHTS)
                .map(|(d, w)| u32::from(d - b'0') * w)
                .sum();
            let check = b"10X98765432"[(sum % 11) as usize];
            if b[17] != check {
                return Err(Error::invalid(
                    "holders.id_number: not a valid ID card number (its check character is wrong)",
                ));
            }
        }
        IdType::Passport | IdType::HkMacaoPermit | IdType::TaiwanPermit => {
            if !(5..=20).contains(&n.len()) || !n.bytes().all(|c| c.is_ascii_alphanumeric()) {
                return Err(Error::invalid(
                    "holders.id_number: 5 to 20 letters and digits for this document type",
                ));
            }
        }
    }
    Ok(n)
}

/// A normalised number for display: an ID card keeps its first 3 and last 4 characters, any
/// other document its first and last 2 (1 each below 8 characters); the rest become `*`.
pub fn mask(id_type: IdType, number: &str) -> String {
    let (head, tail) = match id_type {
        IdType::IdCard => (3, 4),
        _ if number.len() < 8 => (1, 1),
        _ => (2, 2),
    };
    let n = number.len();
    number
        .char_indices()
        .map(|(i, c)| if i < head || i + tail >= n { c } else { '*' })
        .collect()
}

/// The holders of a buy of `quantity` tickets: one each for a real-name session (sealed in
/// order, the first ticket's first), none otherwise; no document twice. The engine's rule,
/// before any backend sees the buy. Without a key (a deployment that has not set one, whose
/// processes would hash one document differently) a real-name session sells nothing
/// (`Conflict`).
pub fn seal_holders(
    key: Option<&DocumentKey>,
    real_name: bool,
    quantity: u32,
    holders: &[HolderInput],
) -> Result<Vec<Holder>> {
    if !real_name {
        if holders.is_empty() {
            return Ok(Vec::new());
        }
        return Err(Error::invalid(
            "holders: this session does not sell real-name tickets",
        ));
    }
    let Some(key) = key else {
        return Err(no_key());
    };
    if holders.len() != quantity as usize {
        return Err(Error::invalid(format!(
            "holders: a real-name session needs one holder per ticket ({quantity}), not {}",
            holders.len()
        )));
    }
    let sealed = holders
        .iter()
        .map(|h| key.seal(h))
        .collect::<Result<Vec<_>>>()?;
    let mut seen = HashMap::new();
    for (i, h) in sealed.iter().enumerate() {
        if let Some(first) = seen.insert(&h.id_hash, i) {
            return Err(Error::invalid(format!(
                "holders: tickets {} and {} name the same document; one document holds one \
                 ticket per session",
                first + 1,
                i + 1
            )));
        }
    }
    Ok(sealed)
}

/// The refusal of a real-name session where no document key is set.
pub fn no_key() -> Error {
    Error::conflict(
        crate::Entity::Activity,
        "real-name",
        "no document key is set (sale.document_key): real-name sessions need one key shared by \
         every process, or one document could hold a ticket per process",
    )
}

/// Holders as backends' compact records carry them: `code:masked:hash:name` joined by `;`
/// (no field has `|#;:,`).
pub fn holders_text(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| {
            format!(
                "{}:{}:{}:{}",
                h.id_type.code(),
                h.id_masked,
                h.id_hash,
                h.name
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Parses [`holders_text`]'s form (`None` when malformed; an empty text is no holders).
pub fn parse_holders(text: &str) -> Option<Vec<Holder>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(';')
        .map(|h| {
            let mut f = h.splitn(4, ':');
            let id_type = IdType::from_code(f.next()?)?;
            let (masked, hash, name) = (f.next()?, f.next()?, f.next()?);
            if hash.is_empty() || name.is_empty() {
                return None;
            }
            Some(Holder {
                name: name.to_string(),
                id_type,
                id_masked: masked.to_string(),
                id_hash: hash.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, t: IdType, n: &str) -> HolderInput {
        HolderInput {
            name: name.into(),
            id_type: t,
            id_number: n.into(),
        }
    }

    const CARD: &str = "11010519491231002X";

    #[test]
    fn id_cards_are_checked_by_their_check_character() {
        assert_eq!(
            check_holder(&input("张三", IdType::IdCard, " 11010519491231002x ")).unwrap(),
            CARD
        );
        for bad in [
            "110105194912310021",
            "11010519491231002",
            "1101051949123100XX",
        ] {
            let e = check_holder(&input("张三", IdType::IdCard, bad)).unwrap_err();
            assert!(!e.to_string().contains(bad), "{e}");
        }
        assert!(check_holder(&input("A", IdType::Passport, "E1234567")).is_ok());
        assert!(check_holder(&input("A", IdType::Passport, "E12-34567")).is_err());
        assert!(check_holder(&input("A|B", IdType::Passport, "E1234567")).is_err());
        assert!(check_holder(&input(" ", IdType::Passport, "E1234567")).is_err());
    }

    #[test]
    fn sealing_masks_and_hashes_under_the_key() {
        let k = DocumentKey::new("0123456789abcdef").unwrap();
        let h = k.seal(&input("张三", IdType::IdCard, CARD)).unwrap();
        assert_eq!(h.id_masked, "110***********002X");
        assert_eq!(h.id_hash.len(), 32);
        assert!(!h.id_hash.contains(CARD) && !format!("{h:?}").contains(CARD));
        assert_eq!(
            k.seal(&input("Zhang San", IdType::IdCard, &CARD.to_lowercase()))
                .unwrap()
                .id_hash,
            h.id_hash,
            "the same document, whatever the name or case"
        );
        let other = DocumentKey::new("fedcba9876543210").unwrap();
        assert_ne!(
            other
                .seal(&input("张三", IdType::IdCard, CARD))
                .unwrap()
                .id_hash,
            h.id_hash
        );
        assert_ne!(
            k.seal(&input("张三", IdType::Passport, "E1234567"))
                .unwrap()
                .id_hash,
            k.seal(&input("张三", IdType::HkMacaoPermit, "E1234567"))
                .unwrap()
                .id_hash,
            "the kind is part of the document"
        );
        assert_eq!(mask(IdType::Passport, "E1234567"), "E1****67");
        assert_eq!(
            mask(IdType::Passport, "E1234"),
            "E***4",
            "a short number shows less"
        );
        let e = serde_json::from_str::<HolderInput>(
            r#"{"name": "A", "id_type": "id_card", "id_number": 110105194912310021}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("must be a string") && !e.contains("1101051949"),
            "{e}"
        );
        assert!(DocumentKey::new("short").is_err());
        assert!(!format!("{k:?}").contains("0123"));
        assert!(!format!("{:?}", input("a", IdType::IdCard, CARD)).contains(CARD));
    }

    #[test]
    fn a_buy_names_one_holder_per_ticket_each_document_once() {
        let k = DocumentKey::random();
        let a = input("A", IdType::Passport, "E1234567");
        let b = input("B", IdType::Passport, "E7654321");
        assert_eq!(seal_holders(Some(&k), false, 2, &[]).unwrap(), []);
        assert!(matches!(
            seal_holders(None, true, 1, std::slice::from_ref(&a)),
            Err(Error::Conflict { .. })
        ));
        assert!(seal_holders(Some(&k), false, 1, std::slice::from_ref(&a)).is_err());
        assert!(seal_holders(Some(&k), true, 2, std::slice::from_ref(&a)).is_err());
        let e = seal_holders(
            Some(&k),
            true,
            2,
            &[a.clone(), input("C", IdType::Passport, "e1234567")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("tickets 1 and 2"), "{e}");
        let two = seal_holders(Some(&k), true, 2, &[a, b]).unwrap();
        assert_eq!(parse_holders(&holders_text(&two)).unwrap(), two);
        assert_eq!(parse_holders("").unwrap(), []);
        assert!(parse_holders("xx:a:b:c").is_none());
    }
}
