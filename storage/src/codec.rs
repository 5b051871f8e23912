//! How values are laid out on disk: one format-version byte, then bincode 2.0.1
//! (standard configuration, serde). Changing a stored type's shape means a new
//! version byte and a migration that reads the old one; decoding never panics.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version byte in front of every stored value.
pub const FORMAT_VERSION: u8 = 1;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value with its format-version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION];
    // Encoding into a Vec can only fail for types serde cannot describe, which
    // would be a programmer error in a stored type, never bad input.
    bincode::serde::encode_into_std_write(value, &mut bytes, config())
        .expect("stored types always encode");
    bytes
}

/// Why a stored value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    #[error("bincode: {0}")]
    Bincode(String),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (value, read) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| DecodeError::Bincode(e.to_string()))?;
    if read != body.len() {
        return Err(DecodeError::Trailing(body.len() - read));
    }
    Ok(value)
}
