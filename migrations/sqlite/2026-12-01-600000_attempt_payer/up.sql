-- The payer a JSAPI attempt was made for (the openid under its appid): a prepay_id can be
-- paid only by that WeChat user, so another user scanning the same QR gets an attempt of
-- their own instead of one they cannot pay.
ALTER TABLE pay_attempt ADD COLUMN payer VARCHAR(128) NULL;
