//! Demo data for a fresh database: products with stock and images, and one demo admin.

use super::{account, ServiceError};
use crate::db::{self, Conn};
use crate::domain::Scope;
use crate::models::{now, product, user, NewProduct};
use crate::validators::Credentials;
use rand::Rng;

const DEMO_PRODUCTS: [(&str, i64, i32, &str, &str); 8] = [
    (
        "西湖龙井 明前特级 100g",
        16800,
        120,
        "/static/img/products/p1.svg",
        "明前头采，豆香清雅，罐装 100 克",
    ),
    (
        "云南小粒咖啡豆 500g",
        8900,
        200,
        "/static/img/products/p2.svg",
        "保山产区中深烘焙，现烘现发",
    ),
    (
        "景德镇手绘马克杯",
        5900,
        80,
        "/static/img/products/p3.svg",
        "釉下彩手绘，容量 350ml",
    ),
    (
        "宣纸笔记本 A5",
        3250,
        300,
        "/static/img/products/p4.svg",
        "120 页，锁线装订，可平摊",
    ),
    (
        "降噪蓝牙耳机",
        39900,
        40,
        "/static/img/products/p5.svg",
        "主动降噪，续航 30 小时",
    ),
    (
        "城市通勤双肩包",
        22900,
        60,
        "/static/img/products/p6.svg",
        "防泼水面料，可放 15.6 寸电脑",
    ),
    (
        "竹柄牙刷 四支装",
        1990,
        500,
        "/static/img/products/p7.svg",
        "天然竹柄，软毛护龈",
    ),
    (
        "广式月饼礼盒 8 枚",
        12800,
        150,
        "/static/img/products/p8.svg",
        "莲蓉、豆沙、五仁、蛋黄四味",
    ),
];

/// Inserts the demo products when the catalogue is empty. Returns how many were inserted.
pub fn products(conn: &mut Conn) -> Result<usize, ServiceError> {
    db::write_tx(conn, |c| {
        if product::count(c)? > 0 {
            return Ok(0);
        }
        let t = now();
        for (i, (name, price, stock, img, summary)) in DEMO_PRODUCTS.iter().enumerate() {
            // Distinct creation times so "recent" has a stable order.
            let created = t - chrono::Duration::seconds((DEMO_PRODUCTS.len() - i) as i64);
            product::insert(
                c,
                &NewProduct {
                    name,
                    price: *price,
                    stock: *stock,
                    main_img_url: img,
                    summary,
                    on_sale: true,
                    created_at: created,
                    updated_at: created,
                },
            )?;
        }
        Ok(DEMO_PRODUCTS.len())
    })
}

/// Creates the demo admin `admin` with a random password when no admin exists; returns the
/// password so the caller can print it once. Another instance winning the race is fine.
pub fn demo_admin(conn: &mut Conn) -> Result<Option<String>, ServiceError> {
    if user::count_with_scope(conn, Scope::Admin.code())? > 0 {
        return Ok(None);
    }
    let password: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    let cred = Credentials {
        username: "admin".into(),
        password: password.clone(),
    };
    match account::register(conn, &cred, Scope::Admin) {
        Ok(_) => Ok(Some(password)),
        Err(ServiceError::Invalid(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
