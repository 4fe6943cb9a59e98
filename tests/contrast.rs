//! WCAG AA contrast of the admin console's colours, read from the CSS it ships: every rule
//! that sets both a text colour and a solid background, the text that sits on the page's
//! backgrounds, the order status badges, and the focus ring against every background.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

fn css(name: &str) -> String {
    let path = format!("{}/static/css/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    // Comments out.
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i..]
            .find("*/")
            .map(|j| &rest[i + j + 2..])
            .unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// `(selectors, declarations)` of each rule, in order (no nested blocks in these files
/// besides `@media`, whose inner rules come out with the `@media` text in the selector).
fn rules(text: &str) -> Vec<(String, HashMap<String, String>)> {
    text.split('}')
        .filter_map(|block| {
            let (sel, body) = block.rsplit_once('{')?;
            let decls = body
                .split(';')
                .filter_map(|d| d.split_once(':'))
                .map(|(k, v)| {
                    let v = v.trim().trim_end_matches("!important").trim();
                    (k.trim().to_string(), v.to_string())
                })
                .collect();
            Some((sel.trim().to_string(), decls))
        })
        .collect()
}

struct Sheet {
    rules: Vec<(String, HashMap<String, String>)>,
    /// Where admin.css's rules start in `rules`.
    admin_from: usize,
    vars: HashMap<String, String>,
}

impl Sheet {
    fn load() -> Sheet {
        let mut rules = rules(&css("site.css"));
        let admin_from = rules.len();
        rules.extend(self::rules(&css("admin.css")));
        let mut vars = HashMap::new();
        for (_, d) in &rules {
            for (k, v) in d {
                if k.starts_with("--") {
                    vars.insert(k.clone(), v.clone());
                }
            }
        }
        Sheet {
            rules,
            admin_from,
            vars,
        }
    }

    /// A colour value as `#rrggbb`, through `var(--x)`; None for anything not solid.
    fn hex(&self, v: &str) -> Option<[u8; 3]> {
        let v = v.trim();
        if let Some(name) = v.strip_prefix("var(").and_then(|r| r.strip_suffix(')')) {
            return self.hex(self.vars.get(name.trim())?);
        }
        let h = v.strip_prefix('#')?;
        let h: String = match h.len() {
            3 => h.chars().flat_map(|c| [c, c]).collect(),
            6 => h.to_string(),
            _ => return None,
        };
        let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
        Some([byte(0)?, byte(2)?, byte(4)?])
    }

    /// The last value of `prop` in the rule whose selector list has exactly `selector`.
    fn prop(&self, selector: &str, prop: &str) -> [u8; 3] {
        let v = self
            .rules
            .iter()
            .rev()
            .filter(|(s, _)| s.split(',').any(|one| one.trim() == selector))
            .find_map(|(_, d)| d.get(prop).and_then(|v| self.hex(v)));
        v.unwrap_or_else(|| panic!("no solid {prop} for {selector}"))
    }
}

fn luminance(c: [u8; 3]) -> f64 {
    let lin = |v: u8| {
        let s = f64::from(v) / 255.0;
        if s <= 0.03928 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
}

fn ratio(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[test]
fn the_ratio_matches_known_pairs() {
    assert!((ratio([0, 0, 0], [255, 255, 255]) - 21.0).abs() < 0.01);
    assert!((ratio([0x6b, 0x72, 0x80], [0xf3, 0xf4, 0xf6]) - 4.39).abs() < 0.01);
}

#[test]
fn admin_rules_with_text_and_background_reach_4_5_to_1() {
    let sheet = Sheet::load();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (sel, d) in &sheet.rules[sheet.admin_from..] {
        // Inactive controls are exempt (WCAG 1.4.3).
        if sel.contains("disabled") {
            continue;
        }
        let fg = d.get("color").and_then(|v| sheet.hex(v));
        let bg = d
            .get("background")
            .or_else(|| d.get("background-color"))
            .and_then(|v| sheet.hex(v));
        if let (Some(fg), Some(bg)) = (fg, bg) {
            checked += 1;
            let r = ratio(fg, bg);
            if r < 4.5 {
                failures.push(format!("{sel}: {r:.2}"));
            }
        }
    }
    assert!(checked >= 15, "only {checked} rules found");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn text_on_the_admin_backgrounds_and_the_badges_reach_4_5_to_1() {
    let sheet = Sheet::load();
    let var = |n: &str| sheet.hex(&format!("var({n})")).unwrap();
    let (page, card, head) = (var("--adm-bg"), var("--adm-card"), var("--adm-head"));
    let thead = sheet.prop(".admin-table th", "background");
    let mut pairs = vec![
        ("text on page", var("--adm-text"), page),
        ("muted on page", var("--adm-muted"), page),
        ("muted on card", var("--adm-muted"), card),
        ("muted on table head", var("--adm-muted"), thead),
        ("link on page", var("--adm-primary"), page),
        ("link on card", var("--adm-primary"), card),
        ("ok on card", var("--adm-ok"), card),
        ("danger on card", var("--adm-danger"), card),
        ("nav on header", sheet.prop(".admin-nav a", "color"), head),
        (
            "admin name on header",
            sheet.prop(".admin-name", "color"),
            head,
        ),
        ("footer on page", sheet.prop(".admin-footer", "color"), page),
    ];
    for n in 1..=7 {
        let sel = format!(".admin .status-{n}");
        let plain = format!(".status-{n}");
        let pick = |p: &str| {
            sheet
                .rules
                .iter()
                .rev()
                .filter(|(s, _)| s.split(',').any(|o| o.trim() == sel || o.trim() == plain))
                .find_map(|(_, d)| d.get(p).and_then(|v| sheet.hex(v)))
                .unwrap()
        };
        pairs.push(("status badge", pick("color"), pick("background")));
    }
    let failures: Vec<String> = pairs
        .iter()
        .map(|(what, fg, bg)| (what, ratio(*fg, *bg)))
        .filter(|(_, r)| *r < 4.5)
        .map(|(what, r)| format!("{what}: {r:.2}"))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_focus_ring_is_solid_and_stands_out_on_every_background() {
    let sheet = Sheet::load();
    let ring = |sel: &str| {
        let (_, d) = sheet
            .rules
            .iter()
            .rev()
            .find(|(s, _)| s.split(',').any(|o| o.trim() == sel))
            .unwrap_or_else(|| panic!("no rule for {sel}"));
        let outline = d.get("outline").unwrap();
        let colour = outline.split_whitespace().last().unwrap();
        sheet
            .hex(colour)
            .unwrap_or_else(|| panic!("{sel}: the ring {outline} is not a solid colour"))
    };
    let light = ring(".admin .btn:focus-visible");
    for sel in [
        ".admin input:focus-visible",
        ".admin select:focus-visible",
        ".admin a:focus-visible",
        ".admin summary:focus-visible",
    ] {
        assert_eq!(ring(sel), light, "{sel}");
    }
    // No later :focus rule takes the outline away.
    for (sel, d) in &sheet.rules {
        if sel.contains(".admin") && sel.contains(":focus") {
            assert_ne!(d.get("outline").map(String::as_str), Some("none"), "{sel}");
        }
    }
    // Every light background the admin CSS paints (the ring's surroundings)…
    let backgrounds: Vec<([u8; 3], String)> = sheet.rules[sheet.admin_from..]
        .iter()
        .filter_map(|(s, d)| {
            let bg = d.get("background").or_else(|| d.get("background-color"))?;
            Some((sheet.hex(bg)?, s.clone()))
        })
        .filter(|(c, _)| luminance(*c) > 0.4)
        .collect();
    assert!(backgrounds.len() >= 10, "{}", backgrounds.len());
    for (bg, sel) in &backgrounds {
        let r = ratio(light, *bg);
        assert!(r >= 3.0, "focus ring on {sel}: {r:.2}");
    }
    // …and the dark header, which has its own ring.
    let dark = ring(".admin-header a:focus-visible");
    let head = sheet.hex("var(--adm-head)").unwrap();
    assert!(ratio(dark, head) >= 3.0, "{:.2}", ratio(dark, head));
    assert!(ratio(light, head) < 3.0, "the header needs its own ring");
}
