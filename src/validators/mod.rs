//! Request DTOs turned into commands, or into one Chinese message per field in error.
//! May import domain and serde only (and derive utoipa schemas: the API's contract).

use crate::domain::ProductId;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

pub type FieldErrors = BTreeMap<String, String>;

/// Most lines one order may have, and most units of one product in it.
pub const MAX_LINES: usize = 50;
pub const MAX_COUNT: i64 = 999;

/// A validated order request: product ids unique (duplicates merged), ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrderCmd {
    pub lines: Vec<(ProductId, i32)>,
}

fn positive_int(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_i64).filter(|n| *n > 0)
}

/// The API's order request `{"products":[{"product_id":1,"count":2}, ...]}`. The lines are
/// read as JSON and checked by `validate`, so that "abc", -1 or a missing key each get a
/// message naming the line and the field rather than a parse error.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PlaceOrderBody {
    /// Lines of the same product are added up.
    #[serde(default)]
    #[schema(value_type = Vec<PlaceOrderLine>, min_items = 1, max_items = 50, required = true)]
    pub products: Value,
}

/// One line of `PlaceOrderBody` as `validate` accepts it (the schema only: lines are read as
/// JSON).
#[derive(utoipa::ToSchema)]
pub struct PlaceOrderLine {
    #[schema(minimum = 1)]
    pub product_id: i32,
    #[schema(minimum = 1, maximum = 999)]
    pub count: i32,
}

impl PlaceOrderBody {
    pub fn validate(&self) -> Result<PlaceOrderCmd, FieldErrors> {
        place_order(&self.products)
    }
}

fn place_order(products: &Value) -> Result<PlaceOrderCmd, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(list) = products.as_array() else {
        errors.insert("products".into(), "products 必须是商品列表".into());
        return Err(errors);
    };
    if list.is_empty() {
        errors.insert("products".into(), "商品列表不能为空".into());
    } else if list.len() > MAX_LINES {
        errors.insert(
            "products".into(),
            format!("一个订单最多 {MAX_LINES} 种商品"),
        );
    }
    let mut merged: BTreeMap<i32, i64> = BTreeMap::new();
    for (i, line) in list.iter().enumerate().take(MAX_LINES + 1) {
        let id = positive_int(line.get("product_id")).and_then(|n| i32::try_from(n).ok());
        let count = positive_int(line.get("count"));
        match id {
            None => {
                errors.insert(
                    format!("products[{i}].product_id"),
                    "product_id 必须是正整数".into(),
                );
            }
            Some(id) => match count {
                Some(c) if c <= MAX_COUNT => *merged.entry(id).or_insert(0) += c,
                _ => {
                    errors.insert(
                        format!("products[{i}].count"),
                        format!("count 必须是 1 到 {MAX_COUNT} 之间的整数"),
                    );
                }
            },
        }
    }
    if let Some((id, _)) = merged.iter().find(|(_, c)| **c > MAX_COUNT) {
        errors.insert(
            "products".into(),
            format!("商品 {id} 的数量合计超过 {MAX_COUNT}"),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PlaceOrderCmd {
        lines: merged
            .into_iter()
            .map(|(id, c)| (ProductId(id), c as i32))
            .collect(),
    })
}

/// The address form / JSON, as typed (the schema says what `validate` accepts).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AddressForm {
    #[schema(required = true, min_length = 1, max_length = 30)]
    pub name: String,
    /// 11 digits starting with 1.
    #[schema(required = true, pattern = "^1[0-9]{10}$")]
    pub mobile: String,
    #[schema(required = true, min_length = 1, max_length = 30)]
    pub province: String,
    #[schema(required = true, min_length = 1, max_length = 30)]
    pub city: String,
    #[schema(required = true, min_length = 1, max_length = 30)]
    pub district: String,
    #[schema(required = true, min_length = 1, max_length = 120)]
    pub detail: String,
}

/// A checked address, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressCmd {
    pub name: String,
    pub mobile: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub detail: String,
}

fn text_field(
    errors: &mut FieldErrors,
    field: &str,
    label: &str,
    value: &str,
    max: usize,
) -> String {
    let v = value.trim().to_string();
    let n = v.chars().count();
    if n == 0 {
        errors.insert(field.into(), format!("请填写{label}"));
    } else if n > max {
        errors.insert(field.into(), format!("{label}最多 {max} 个字"));
    } else if v.chars().any(char::is_control) {
        errors.insert(field.into(), format!("{label}含有不可见字符"));
    }
    v
}

impl AddressForm {
    pub fn validate(&self) -> Result<AddressCmd, FieldErrors> {
        let mut e = FieldErrors::new();
        let cmd = AddressCmd {
            name: text_field(&mut e, "name", "收货人", &self.name, 30),
            mobile: self.mobile.trim().to_string(),
            province: text_field(&mut e, "province", "省份", &self.province, 30),
            city: text_field(&mut e, "city", "城市", &self.city, 30),
            district: text_field(&mut e, "district", "区县", &self.district, 30),
            detail: text_field(&mut e, "detail", "详细地址", &self.detail, 120),
        };
        let m = cmd.mobile.as_bytes();
        if m.len() != 11 || m[0] != b'1' || !m.iter().all(u8::is_ascii_digit) {
            e.insert("mobile".into(), "请填写 11 位手机号码".into());
        }
        if e.is_empty() {
            Ok(cmd)
        } else {
            Err(e)
        }
    }

    /// The values to show again in a re-rendered form.
    pub fn values(&self) -> BTreeMap<String, String> {
        [
            ("name", &self.name),
            ("mobile", &self.mobile),
            ("province", &self.province),
            ("city", &self.city),
            ("district", &self.district),
            ("detail", &self.detail),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }
}

/// The login and register forms.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccountForm {
    pub username: String,
    pub password: String,
    pub password2: Option<String>,
    pub next: String,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl AccountForm {
    /// Login: both fields present.
    pub fn login(&self) -> Result<Credentials, FieldErrors> {
        let mut e = FieldErrors::new();
        if self.username.trim().is_empty() {
            e.insert("username".into(), "请填写用户名".into());
        }
        if self.password.is_empty() {
            e.insert("password".into(), "请填写密码".into());
        }
        if e.is_empty() {
            Ok(self.credentials())
        } else {
            Err(e)
        }
    }

    /// Registration: a 3–32 character name of letters, digits and `_`; an 8–72 byte
    /// password typed twice.
    pub fn register(&self) -> Result<Credentials, FieldErrors> {
        let mut e = FieldErrors::new();
        let name = self.username.trim();
        let name_ok = (3..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            e.insert(
                "username".into(),
                "用户名为 3 到 32 位字母、数字或下划线".into(),
            );
        }
        if let Err(why) = check_password(&self.password) {
            e.insert("password".into(), why.into());
        }
        if self.password2.as_deref() != Some(self.password.as_str()) {
            e.insert("password2".into(), "两次输入的密码不一致".into());
        }
        if e.is_empty() {
            Ok(self.credentials())
        } else {
            Err(e)
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            username: self.username.trim().to_string(),
            password: self.password.clone(),
        }
    }

    /// Only the username is shown again; passwords never are.
    pub fn values(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("username".to_string(), self.username.clone())])
    }
}

/// The password rule of registration, also for an admin's new password: 8 to 72 bytes.
pub fn check_password(password: &str) -> Result<(), &'static str> {
    if (8..=72).contains(&password.len()) {
        Ok(())
    } else {
        Err("密码长度为 8 到 72 位")
    }
}

/// A local path to return to after login: one leading `/`, no backslash and no control
/// character (no open redirect: browsers drop tab, CR and LF inside a URL, so `/\t/evil`
/// would become `//evil`; and a header cannot hold CR or LF).
pub fn safe_next(next: &str, fallback: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if ok {
        next.to_string()
    } else {
        fallback.to_string()
    }
}

/// Whether URL-encoded input (a query string, a path, a form body) carries a NUL byte, raw or
/// as `%00` (a literal `%` is always `%25`). PostgreSQL can neither store nor compare one, and
/// no honest client sends it: such a request is refused whole.
pub fn has_nul(encoded: &[u8]) -> bool {
    encoded.contains(&0) || encoded.windows(3).any(|w| w == b"%00")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn place_order(body: &Value) -> Result<PlaceOrderCmd, FieldErrors> {
        serde_json::from_value::<PlaceOrderBody>(body.clone())
            .map_err(|e| FieldErrors::from([("body".to_string(), e.to_string())]))?
            .validate()
    }

    #[test]
    fn duplicate_product_ids_are_merged_and_sorted() {
        let cmd = place_order(&json!({"products":[
            {"product_id":3,"count":1},{"product_id":1,"count":2},{"product_id":3,"count":4}]}));
        assert_eq!(
            cmd.map(|c| c.lines),
            Ok(vec![(ProductId(1), 2), (ProductId(3), 5)])
        );
    }

    #[test]
    fn bad_lines_are_named() {
        for (body, key) in [
            (json!({"products":[]}), "products"),
            (json!({}), "products"),
            (
                json!({"products":[{"product_id":1,"count":0}]}),
                "products[0].count",
            ),
            (
                json!({"products":[{"product_id":1,"count":-1}]}),
                "products[0].count",
            ),
            (
                json!({"products":[{"product_id":1,"count":"abc"}]}),
                "products[0].count",
            ),
            (
                json!({"products":[{"product_id":1,"count":1000}]}),
                "products[0].count",
            ),
            (
                json!({"products":[{"product_id":1.5,"count":1}]}),
                "products[0].product_id",
            ),
            (json!({"products":[{"count":1}]}), "products[0].product_id"),
            (
                json!({"products":[{"product_id":1,"count":600},{"product_id":1,"count":600}]}),
                "products",
            ),
        ] {
            let errors = place_order(&body).err().unwrap_or_default();
            assert!(errors.contains_key(key), "{body} -> {errors:?}");
        }
        let many: Vec<_> = (1..=51)
            .map(|i| json!({"product_id": i, "count": 1}))
            .collect();
        assert!(place_order(&json!({ "products": many })).is_err());
    }

    #[test]
    fn an_address_needs_a_mobile_number() {
        let form = AddressForm {
            name: "张三".into(),
            mobile: "1380013800".into(),
            province: "广东省".into(),
            city: "深圳市".into(),
            district: "南山区".into(),
            detail: "科技园 1 号".into(),
        };
        let errors = form.validate().err().unwrap_or_default();
        assert_eq!(errors.keys().collect::<Vec<_>>(), vec!["mobile"]);
    }

    #[test]
    fn nul_is_found_raw_or_encoded_but_not_in_an_encoded_percent() {
        assert!(has_nul(b"a=1&b=x%00y"));
        assert!(has_nul(b"a=\0"));
        assert!(!has_nul(b"a=%2500&b=100%25"));
    }

    #[test]
    fn next_must_stay_on_this_site() {
        assert_eq!(safe_next("/home/cart", "/"), "/home/cart");
        assert_eq!(safe_next("//evil.example", "/"), "/");
        assert_eq!(safe_next("https://evil.example", "/"), "/");
        for evil in [
            "/\t/evil.example",
            "/\\evil.example",
            "/a\r\nSet-Cookie: x=1",
            "/\0",
        ] {
            assert_eq!(safe_next(evil, "/"), "/", "{evil:?}");
        }
    }
}
