//! Thin handlers: extract, turn the DTO into a command, call one service, answer with a page,
//! a redirect or JSON. May import services, validators and views.

pub mod admin;
pub mod api;
pub mod error;
pub mod home;
pub mod notify;
pub mod ops;
pub mod sandbox;
pub mod session;

use crate::db::Conn;
use crate::services::ServiceError;
use crate::startup::AppState;
use crate::views::{Layout, Page};
use actix_web::http::header;
use actix_web::HttpResponse;
use error::PageError;
use serde::de::DeserializeOwned;
use session::{Cart, Session};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Runs a blocking service call on the blocking pool with a pooled connection.
pub async fn db<T, F>(state: &AppState, f: F) -> Result<T, ServiceError>
where
    T: Send + 'static,
    F: FnMut(&mut Conn) -> Result<T, ServiceError> + Send + 'static,
{
    crate::services::run(&state.db, f).await
}

/// Renders a page struct with its template.
pub fn render_html<P: Page>(tera: &tera::Tera, page: &P) -> Result<String, tera::Error> {
    let ctx = tera::Context::from_serialize(page)?;
    tera.render(P::TEMPLATE, &ctx)
}

/// A 200 HTML response of the page.
pub fn render<P: Page>(state: &AppState, page: &P) -> Result<HttpResponse, PageError> {
    render_status(state, page, actix_web::http::StatusCode::OK)
}

pub fn render_status<P: Page>(
    state: &AppState,
    page: &P,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, PageError> {
    let html = render_html(&state.tera, page).map_err(PageError::internal)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// The layout of every page: who is logged in, the cart badge, the CSRF token.
pub fn layout(session: &Session, cart: &Cart) -> Layout {
    Layout {
        user: session.data.name.clone(),
        cart_count: cart.count(),
        csrf: session.data.csrf.clone(),
        flash: session.flash(),
    }
}

/// The shopper's address as the platforms want it (`spbill_create_ip`, `client_ip`): IPv4
/// text, nothing else passes. See `shopper_ipv4`; a shopper reachable over IPv6 only is
/// sent as the server's own IPv4 address (`server_ip`), the address WeChat asks for when
/// the payer's is not at hand (NATIVE), rather than a made-up one.
pub fn client_ip(state: &AppState, req: &actix_web::HttpRequest) -> String {
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let peer = req.peer_addr().map(|a| a.ip());
    shopper_ipv4(peer, &forwarded, &state.config.trusted_proxies)
        .unwrap_or_else(|| state.config.server_ipv4())
        .to_string()
}

/// The shopper's IPv4 address, if it has one: the peer's, or, when the peer is a trusted
/// proxy, the nearest address in `X-Forwarded-For` (read right to left) that is not a
/// trusted proxy itself; anyone can write that header, so only trusted proxies' hops count.
/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, a dual-stack listener's view of IPv4) is IPv4.
pub fn shopper_ipv4(
    peer: Option<IpAddr>,
    forwarded: &[&str],
    trusted: &[ipnet::IpNet],
) -> Option<Ipv4Addr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut ip = peer?.to_canonical();
    if is_trusted(&ip) {
        let hops = forwarded.iter().flat_map(|h| h.split(',')).map(str::trim);
        for hop in hops.rev() {
            // A hop may carry a port (`1.2.3.4:5678`, `[2001:db8::1]:80`).
            let parsed = hop
                .parse::<IpAddr>()
                .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()));
            let Ok(hop) = parsed else { break };
            ip = hop.to_canonical();
            if !is_trusted(&ip) {
                break;
            }
        }
    }
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

/// `to` with `done=<what>` added to its query: the page there confirms what was done.
pub fn with_done(to: &str, what: &str) -> String {
    let sep = if to.contains('?') { '&' } else { '?' };
    format!("{to}{sep}done={what}")
}

/// 303 See Other: the answer to a successful form POST.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

#[derive(serde::Deserialize, Default)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Parses an urlencoded form after checking its `csrf` field against the session.
pub fn csrf_form<T: DeserializeOwned>(session: &Session, body: &[u8]) -> Result<T, PageError> {
    let field: CsrfField = serde_urlencoded::from_bytes(body).unwrap_or_default();
    session.check_csrf(&field.csrf)?;
    if crate::validators::has_nul(body) {
        log::warn!("form with a NUL byte refused");
        return Err(PageError::bad_request("表单含有非法字符。"));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| PageError::bad_request(format!("表单格式错误：{e}")))
}

#[cfg(test)]
mod tests {
    use super::shopper_ipv4;
    use std::net::{IpAddr, Ipv4Addr};

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn v4(s: &str) -> Option<Ipv4Addr> {
        s.parse().ok()
    }

    fn nets(cidrs: &[&str]) -> Vec<ipnet::IpNet> {
        cidrs.iter().filter_map(|n| n.parse().ok()).collect()
    }

    #[test]
    fn the_peer_is_the_shopper_unless_it_is_a_trusted_proxy() {
        let none = nets(&[]);
        let proxies = nets(&["10.0.0.0/8"]);
        let spoofed = ["203.0.113.9"];
        assert_eq!(
            shopper_ipv4(ip("198.51.100.7"), &spoofed, &none),
            v4("198.51.100.7")
        );
        assert_eq!(
            shopper_ipv4(ip("198.51.100.7"), &spoofed, &proxies),
            v4("198.51.100.7")
        );
        assert_eq!(
            shopper_ipv4(ip("10.1.2.3"), &spoofed, &proxies),
            v4("203.0.113.9")
        );
        // The client may prepend anything; the nearest untrusted hop counts.
        let chain = ["1.1.1.1, 203.0.113.9", "10.0.0.2"];
        assert_eq!(
            shopper_ipv4(ip("10.1.2.3"), &chain, &proxies),
            v4("203.0.113.9")
        );
        assert_eq!(
            shopper_ipv4(ip("10.1.2.3"), &["203.0.113.9:5678"], &proxies),
            v4("203.0.113.9")
        );
        assert_eq!(
            shopper_ipv4(ip("10.1.2.3"), &["garbage"], &proxies),
            v4("10.1.2.3")
        );
        assert_eq!(shopper_ipv4(ip("10.1.2.3"), &[], &proxies), v4("10.1.2.3"));
    }

    #[test]
    fn mapped_ipv6_is_ipv4_and_plain_ipv6_is_none() {
        let none = nets(&[]);
        assert_eq!(
            shopper_ipv4(ip("::ffff:1.2.3.4"), &[], &none),
            v4("1.2.3.4")
        );
        assert_eq!(shopper_ipv4(ip("2001:db8::1"), &[], &none), None);
        let proxies = nets(&["127.0.0.1/32"]);
        assert_eq!(
            shopper_ipv4(ip("::ffff:127.0.0.1"), &["::ffff:198.51.100.4"], &proxies),
            v4("198.51.100.4")
        );
        assert_eq!(
            shopper_ipv4(ip("127.0.0.1"), &["[2001:db8::1]:443"], &proxies),
            None
        );
        assert_eq!(shopper_ipv4(None, &[], &none), None);
    }
}
