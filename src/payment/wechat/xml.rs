//! The flat `<xml><k>v</k>…</xml>` documents of WeChat Pay v2. Parsing refuses a DOCTYPE and
//! any entity but the five predefined ones, so XXE and entity bombs are inert; callers cap
//! the body size (`MAX_BODY`).

use super::sign::Params;
use quick_xml::events::Event;
use quick_xml::Reader;

/// Largest body accepted from or sent to WeChat.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("body larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("DOCTYPE is not allowed")]
    Doctype,
    #[error("entity &{0}; is not allowed")]
    Entity(String),
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("root element must be <xml>")]
    Root,
}

fn predefined(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Parses `<xml>` with one level of children into a map. Nested elements are kept as their
/// text only (WeChat never nests in v2).
pub fn parse(body: &[u8]) -> Result<Params, XmlError> {
    parse_root(body, "xml")
}

/// As `parse`, for a document whose root element is `root_name` (a refund's `<root>`).
pub fn parse_root(body: &[u8], root_name: &str) -> Result<Params, XmlError> {
    if body.len() > MAX_BODY {
        return Err(XmlError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    let mut out = Params::new();
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut value = String::new();
    loop {
        match reader.read_event() {
            Err(e) => return Err(XmlError::Malformed(e.to_string())),
            Ok(Event::Eof) => break,
            Ok(Event::DocType(_)) => return Err(XmlError::Doctype),
            Ok(Event::Start(e)) => {
                depth += 1;
                let name = e.name().as_ref().to_string();
                if depth == 1 && name != root_name {
                    return Err(XmlError::Root);
                }
                if depth == 2 {
                    current = Some(name);
                    value.clear();
                }
            }
            Ok(Event::Empty(e)) => {
                if depth == 0 {
                    return Err(XmlError::Root);
                }
                if depth == 1 {
                    out.insert(e.name().as_ref().to_string(), String::new());
                }
            }
            Ok(Event::End(_)) => {
                if depth == 2 {
                    if let Some(name) = current.take() {
                        out.insert(name, std::mem::take(&mut value));
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Ok(Event::Text(t)) if depth >= 2 => value.push_str(&t.xml10_content()),
            Ok(Event::CData(t)) if depth >= 2 => value.push_str(&t),
            Ok(Event::GeneralRef(r)) => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?
                } else {
                    predefined(&r)
                };
                let c = c.ok_or_else(|| XmlError::Entity(r.to_string()))?;
                if depth >= 2 {
                    value.push(c);
                }
            }
            Ok(Event::Text(t)) if t.trim().is_empty() => {}
            Ok(Event::Text(_)) | Ok(Event::CData(_)) => {
                return Err(XmlError::Malformed("text outside <xml>".into()))
            }
            Ok(Event::Decl(_) | Event::Comment(_) | Event::PI(_)) => {}
        }
    }
    if depth != 0 {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    Ok(out)
}

/// Writes the map as `<xml>`: sorted, digits bare, everything else in CDATA, `sign` last
/// (as the platform and wechatpy do).
pub fn to_xml(params: &Params) -> String {
    fn element(s: &mut String, k: &str, v: &str) {
        s.push('<');
        s.push_str(k);
        s.push('>');
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            s.push_str(v);
        } else {
            s.push_str("<![CDATA[");
            s.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
            s.push_str("]]>");
        }
        s.push_str("</");
        s.push_str(k);
        s.push('>');
    }
    let mut s = String::from("<xml>");
    for (k, v) in params.iter().filter(|(k, _)| *k != "sign") {
        element(&mut s, k, v);
    }
    if let Some(sign) = params.get("sign") {
        element(&mut s, "sign", sign);
    }
    s.push_str("</xml>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_cdata_and_entities() {
        let body = b"<xml><a><![CDATA[x<y]]></a><b>1&amp;2</b><c>42</c><d/></xml>";
        let p = parse(body).unwrap_or_default();
        assert_eq!(p.get("a").map(String::as_str), Some("x<y"));
        assert_eq!(p.get("b").map(String::as_str), Some("1&2"));
        assert_eq!(p.get("d").map(String::as_str), Some(""));
        let again = parse(to_xml(&p).as_bytes()).unwrap_or_default();
        assert_eq!(again, p);
    }

    #[test]
    fn xxe_and_entity_bombs_are_refused() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>"#;
        assert_eq!(parse(xxe), Err(XmlError::Doctype));
        assert!(matches!(
            parse(b"<xml><a>&e;</a></xml>"),
            Err(XmlError::Entity(_))
        ));
        assert_eq!(parse(&vec![b' '; MAX_BODY + 1]), Err(XmlError::TooLarge));
        assert!(parse(b"<xml><a>1</a>").is_err());
        assert_eq!(parse(b"<root><a>1</a></root>"), Err(XmlError::Root));
        assert!(parse(b"not xml").is_err());
    }

    #[test]
    fn sign_goes_last() {
        let p: Params = [("sign", "S"), ("a", "b"), ("z", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            to_xml(&p),
            "<xml><a><![CDATA[b]]></a><z>1</z><sign><![CDATA[S]]></sign></xml>"
        );
    }
}
