//! Issue 13's admin points: shipping and refunding, a readable timeline, the dashboard,
//! CSV numbers as text and date ranges, contrast of the admin colours.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{html, select_text, TestApp};

#[tokio::test]
async fn csv_numbers_stay_text_and_a_backwards_date_range_is_refused() {
    let app = TestApp::spawn().await;
    let (id, no) = app.paid_wechat_order("csv-text").await;
    app.admin_login().await;
    let tx = jiesuan::models::order::find(&mut app.conn(), id)
        .unwrap()
        .unwrap()
        .transaction_no
        .unwrap();
    let text = app
        .browser
        .get(format!("{}/admin/orders.csv", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = text.lines().nth(1).unwrap();
    let fields: Vec<&str> = row.split(',').collect();
    assert_eq!(fields[0], format!("\"=\"\"{no}\"\"\""), "{row}");
    assert_eq!(fields[6], format!("\"=\"\"{tx}\"\"\""), "{row}");

    let today = jiesuan::services::admin::today_shanghai();
    let yesterday = today.pred_opt().unwrap();
    let (status, body) = app
        .pc_get(&format!("/admin/orders?from={today}&to={yesterday}"))
        .await;
    assert_eq!(status, 200);
    let doc = html(&body);
    assert!(select_text(&doc, "#error-to")
        .unwrap()
        .contains("不能早于起始日期"));
    assert_eq!(
        common::select_attr(&doc, "#f-from", "value").unwrap(),
        today.to_string(),
        "what was typed is kept"
    );
}
