//! Just enough of X.509 for the sandbox's platform certificates: the serial number and the
//! validity period, read from the DER of a `BEGIN CERTIFICATE` PEM. May import payment (the
//! PEM and DER readers).

use crate::payment::pingpp::sign::{bad as malformed, der_element, pem_block, KeyError};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// What the sandbox lists of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Upper-case hex, without leading zeros (as WeChat Pay writes serials).
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.strip_suffix('Z')?;
    let full = match tag {
        // Two-digit years: 50..99 are 19xx, the rest 20xx (RFC 5280).
        UTC_TIME => {
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        GENERALIZED_TIME => text.to_string(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// The serial and validity of the certificate in `pem`.
pub fn cert_info(pem: &str) -> Result<CertInfo, KeyError> {
    let (label, der) = pem_block(pem)?;
    if label != "CERTIFICATE" {
        return Err(malformed("not a certificate"));
    }
    let (tag, cert, _) = der_element(&der)?;
    let (tbs_tag, tbs, _) = der_element(cert)?;
    if tag != SEQUENCE || tbs_tag != SEQUENCE {
        return Err(malformed("not a certificate"));
    }
    let (mut tag, mut serial, mut rest) = der_element(tbs)?;
    if tag == VERSION {
        (tag, serial, rest) = der_element(rest)?;
    }
    if tag != INTEGER {
        return Err(malformed("no serial number"));
    }
    let (_, _, rest) = der_element(rest)?; // signature algorithm
    let (_, _, rest) = der_element(rest)?; // issuer
    let (validity_tag, validity, _) = der_element(rest)?;
    let (before_tag, before, validity) = der_element(validity)?;
    let (after_tag, after, _) = der_element(validity)?;
    let (Some(not_before), Some(not_after)) = (time(before_tag, before), time(after_tag, after))
    else {
        return Err(malformed("bad validity"));
    };
    if validity_tag != SEQUENCE {
        return Err(malformed("bad validity"));
    }
    let digits = hex::encode_upper(serial);
    Ok(CertInfo {
        serial: digits.trim_start_matches('0').to_string(),
        not_before,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_certificates_read_as_openssl_shows_them() {
        let pem = include_str!("../../keys/sandbox/wechat_v3_platform_1_cert.pem");
        let info = cert_info(pem).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.serial, "569A819CE4FB349C5D5159395524516DD5F67597");
        // notBefore=Dec  1 17:40:24 2026 GMT, five years.
        assert_eq!(info.not_before, 1_796_146_824);
        assert!(info.not_after - info.not_before >= 5 * 365 * 86_400 - 86_400);
        assert!(cert_info(include_str!(
            "../../keys/sandbox/wechat_v3_pubkey_public.pem"
        ))
        .is_err());
    }
}
