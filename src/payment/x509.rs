//! Just enough of X.509 for the platforms' certificates, read from the DER of a
//! `BEGIN CERTIFICATE` PEM: the serial number and the validity period (the sandbox's WeChat
//! Pay APIv3 certificates), and Alipay's certificate SN (MD5 of the issuer's RFC 2253 name
//! and the decimal serial), which the shop's Alipay client sends in certificate mode and the
//! sandbox's Alipay checks. Here, not in either, because payment/ may not import sandbox/;
//! python-alipay-sdk computes the same SNs on its own (`tests/alipay_sdk.rs`), so sharing
//! this code cannot hide a mistake from the tests. May import the PEM and DER readers of
//! `payment::pingpp::sign`.

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
    let (serial, rest) = serial_and_rest(&der)?;
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

/// The DER of `1.2.840.113549.1.1` (PKCS#1: sha1/sha256WithRSA and the like), without the
/// last arc.
const PKCS1_ARC: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];

/// A certificate's serial number (DER contents) and the `tbsCertificate` fields after it.
fn serial_and_rest(der: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
    let (tag, cert, _) = der_element(der)?;
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
    Ok((serial, rest))
}

/// The DER contents of a certificate's serial, signature algorithm and issuer.
struct Named<'a> {
    serial: &'a [u8],
    alg: &'a [u8],
    issuer: &'a [u8],
}

fn serial_alg_issuer(der: &[u8]) -> Result<Named<'_>, KeyError> {
    let (serial, rest) = serial_and_rest(der)?;
    let (_, alg, rest) = der_element(rest)?;
    let (issuer_tag, issuer, _) = der_element(rest)?;
    if issuer_tag != SEQUENCE {
        return Err(malformed("bad issuer"));
    }
    Ok(Named {
        serial,
        alg,
        issuer,
    })
}

/// A big-endian unsigned integer in decimal.
fn decimal(bytes: &[u8]) -> String {
    let mut digits = Vec::new(); // little-endian, base 10
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    if digits.is_empty() {
        return "0".into();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// The issuer as Java's `X500Principal.getName()` writes it (RFC 2253): the last RDN first,
/// `TYPE=value` joined with `,`, specials escaped. Only the attribute types Alipay's
/// certificates use are named.
fn rfc2253(issuer: &[u8]) -> Result<String, KeyError> {
    let mut rdns = Vec::new();
    let mut rest = issuer;
    while !rest.is_empty() {
        let (_, set, after) = der_element(rest)?;
        rest = after;
        let mut parts = Vec::new();
        let mut atvs = set;
        while !atvs.is_empty() {
            let (_, atv, after) = der_element(atvs)?;
            atvs = after;
            let (_, oid, value) = der_element(atv)?;
            let (_, text, _) = der_element(value)?;
            let name = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                _ => return Err(malformed("unsupported issuer attribute")),
            };
            let text = std::str::from_utf8(text).map_err(|_| malformed("issuer not UTF-8"))?;
            let mut escaped = String::new();
            for (i, c) in text.chars().enumerate() {
                let edge = (i == 0 && (c == ' ' || c == '#'))
                    || (i + 1 == text.chars().count() && c == ' ');
                if edge || ",+\"<>;\\".contains(c) {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            parts.push(format!("{name}={escaped}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The certificates in a PEM text, each as DER.
fn certificates(pem: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    let end = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    for chunk in pem.split_inclusive(end).filter(|c| c.contains(end)) {
        let (label, der) = pem_block(chunk)?;
        if label != "CERTIFICATE" {
            return Err(malformed("not a certificate"));
        }
        out.push(der);
    }
    if out.is_empty() {
        return Err(malformed("no certificate"));
    }
    Ok(out)
}

fn sn_of(der: &[u8]) -> Result<String, KeyError> {
    use md5::{Digest, Md5};
    let named = serial_alg_issuer(der)?;
    let text = format!("{}{}", rfc2253(named.issuer)?, decimal(named.serial));
    Ok(hex::encode(Md5::digest(text.as_bytes())))
}

/// Alipay's SN of the (first) certificate in `pem`: `app_cert_sn`, `alipay_cert_sn`.
pub fn alipay_cert_sn(pem: &str) -> Result<String, KeyError> {
    let ders = certificates(pem)?;
    sn_of(&ders[0])
}

/// Alipay's `alipay_root_cert_sn`: the SNs of the RSA-signed certificates in the root file,
/// joined with `_` (SM2 ones are skipped).
pub fn alipay_root_cert_sn(pem: &str) -> Result<String, KeyError> {
    let mut sns = Vec::new();
    for der in certificates(pem)? {
        if serial_alg_issuer(&der)?.alg.starts_with(PKCS1_ARC) {
            sns.push(sn_of(&der)?);
        }
    }
    if sns.is_empty() {
        // Alipay would refuse an empty SN: say so at start instead.
        return Err(malformed("no RSA-signed certificate"));
    }
    Ok(sns.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alipay_sns_are_md5_of_the_rfc2253_issuer_and_the_decimal_serial() {
        // Made with: md5("CN=Sandbox Alipay Root CA,OU=Sandbox Certification Authority,
        // O=Sandbox Alipay,C=CN" + decimal(openssl x509 -serial)) in Python; the app and
        // root SNs are also what python-alipay-sdk's DCAliPay computes (tests/alipay_sdk.rs).
        let sn = |pem| alipay_cert_sn(pem).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sn(include_str!("../../keys/sandbox/alipay_app_cert.pem")),
            "cb8ed781ed476b2f7982d70b7ebcd67d"
        );
        assert_eq!(
            sn(include_str!("../../keys/sandbox/alipay_platform_cert.pem")),
            "f969d4437bcf01cad5a5428519cd7b14"
        );
        let root = include_str!("../../keys/sandbox/alipay_root_cert.pem");
        assert_eq!(
            alipay_root_cert_sn(root).unwrap_or_default(),
            "f7f936ab258ad2cfb59567281911f572"
        );
        let two = format!("{root}\n{root}");
        assert_eq!(
            alipay_root_cert_sn(&two).unwrap_or_default(),
            "f7f936ab258ad2cfb59567281911f572_f7f936ab258ad2cfb59567281911f572"
        );
        assert_eq!(decimal(&[0x01, 0x00]), "256");
        assert_eq!(decimal(&[]), "0");
    }

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
