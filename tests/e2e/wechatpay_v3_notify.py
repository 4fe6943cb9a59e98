"""WeChat Pay APIv3 notifications made by independent code (the `cryptography` package, not
the shop's Rust): one right in every part, and copies wrong in exactly one part each. Posts
the wrong ones first, then the right one twice, to the shop's notify URL; prints one line of
JSON: {case: HTTP status}. Driven by tests/wechat_v3_sdk.rs."""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def seal(apiv3_key, nonce, aad, plaintext):
    return base64.b64encode(
        AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext.encode(), aad.encode())
    ).decode()


def sign(key, message):
    return base64.b64encode(
        key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


def envelope(resource, apiv3_key):
    nonce = os.urandom(6).hex()
    return json.dumps(
        {
            "id": "EV-" + os.urandom(8).hex(),
            "create_time": "2026-12-01T18:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": seal(apiv3_key, nonce, "transaction", json.dumps(resource)),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    )


def headers(key, serial, body, timestamp, signature=None):
    nonce = os.urandom(16).hex().upper()
    sig = signature or sign(key, f"{timestamp}\n{nonce}\n{body}\n")
    return {
        "Content-Type": "application/json",
        "Wechatpay-Serial": serial,
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sig,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def post(url, hdrs, body):
    req = urllib.request.Request(url, data=body.encode(), headers=hdrs, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    cfg = json.loads(sys.argv[1])
    key = load_key(cfg["key"])
    stranger = load_key(cfg["stranger_key"])
    now = int(time.time())
    resource = {
        "appid": cfg["appid"],
        "mchid": cfg["mchid"],
        "out_trade_no": cfg["out_trade_no"],
        "transaction_id": "4200002026120100" + cfg["out_trade_no"][-12:],
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-12-01T18:00:00+08:00",
        "payer": {"openid": "o-python-payer"},
        "amount": {
            "total": cfg["total"],
            "payer_total": cfg["total"],
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }

    def with_field(path, value):
        r = json.loads(json.dumps(resource))
        node = r
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return r

    good = envelope(resource, cfg["apiv3_key"])
    serial = cfg["serial"]
    cases = {}
    cases["other_key"] = (headers(stranger, serial, good, now), good)
    cases["stale_timestamp"] = (headers(key, serial, good, now - 400), good)
    probe = "WECHATPAY/SIGNTEST/" + sign(key, "probe")
    cases["signtest"] = (headers(key, serial, good, now, probe), good)
    cases["unknown_serial"] = (headers(key, "PUB_KEY_ID_0000000000000000000000000000000000000", good, now), good)
    cases["body_changed_after_signing"] = (headers(key, serial, good, now), good.replace("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESS "))
    other_apiv3 = envelope(resource, "0" * 32)
    cases["sealed_with_another_apiv3_key"] = (headers(key, serial, other_apiv3, now), other_apiv3)
    for name, path, value in [
        ("wrong_amount", ["amount", "total"], cfg["total"] + 1),
        ("wrong_currency", ["amount", "currency"], "USD"),
        ("wrong_mchid", ["mchid"], "1900000999"),
        ("wrong_appid", ["appid"], "wx0000000000000000"),
        ("unknown_trade", ["out_trade_no"], cfg["out_trade_no"][:-2] + "99"),
    ]:
        body = envelope(with_field(path, value), cfg["apiv3_key"])
        cases[name] = (headers(key, serial, body, now), body)

    out = {}
    for name, (hdrs, body) in cases.items():
        out[name] = post(cfg["url"], hdrs, body)
    out["right"] = post(cfg["url"], headers(key, serial, good, now), good)
    out["right_again"] = post(cfg["url"], headers(key, serial, good, now), good)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
