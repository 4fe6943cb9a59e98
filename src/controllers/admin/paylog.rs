//! `/admin/paylog`: every inbound notification and outbound call; unverified ones stand out.

use super::{choices, layout, page_links};
use crate::controllers::error::PageError;
use crate::controllers::session::Admin;
use crate::controllers::{db, render};
use crate::domain::format_shanghai;
use crate::services::admin::{self, LogFilter};
use crate::startup::AppState;
use crate::views::admin::{NavSection, PayLogPage, PayLogRow};
use crate::views::Form;
use actix_web::{web, HttpResponse};
use std::collections::BTreeMap;

const PAGE_SIZE: i64 = 30;

pub async fn list(
    state: web::Data<AppState>,
    who: Admin,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, PageError> {
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let filter = LogFilter {
        provider: get("provider"),
        verified: get("verified").and_then(|v| match v.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        }),
        outcome: get("outcome"),
    };
    let page: i64 = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let f = filter.clone();
    let (rows, count) = db(&state, move |c| admin::pay_logs(c, &f, page, PAGE_SIZE)).await?;
    let pages = ((count + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let query: Vec<(&str, String)> = ["provider", "verified", "outcome"]
        .into_iter()
        .filter_map(|k| get(k).map(|v| (k, v)))
        .collect();
    let (prev_url, next_url) = page_links("/admin/paylog", &query, page, pages);
    let providers =
        [("wechat", "微信支付"), ("pingpp", "Ping++")].map(|(v, l)| (v.to_string(), l.to_string()));
    let verified =
        [("yes", "已验签"), ("no", "未验签")].map(|(v, l)| (v.to_string(), l.to_string()));
    let page_view = PayLogPage {
        layout: layout(&state, &who, NavSection::Paylog, None).await?,
        filter: Form {
            values: q.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            errors: BTreeMap::new(),
        },
        providers: choices("全部平台", &providers, get("provider").as_deref()),
        verified: choices("全部", &verified, get("verified").as_deref()),
        rows: rows
            .into_iter()
            .map(|l| PayLogRow {
                id: l.id,
                at: format_shanghai(l.created_at),
                provider: l.provider,
                kind: l.kind,
                out_trade_no: l.out_trade_no.unwrap_or_default(),
                order_id: l.order_id,
                verified: l.verified,
                outcome: l.outcome,
                remote_addr: l.remote_addr,
                raw: l.raw_body,
                reply: l.reply,
            })
            .collect(),
        page,
        pages,
        prev_url,
        next_url,
    };
    render(&state, &page_view)
}
