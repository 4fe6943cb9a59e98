CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(80) NOT NULL,
    price BIGINT NOT NULL,
    stock INTEGER NOT NULL,
    main_img_url VARCHAR(255) NOT NULL,
    summary VARCHAR(255) NOT NULL,
    on_sale BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    openid VARCHAR(64) NULL UNIQUE,
    username VARCHAR(32) NULL UNIQUE,
    password_hash VARCHAR(255) NULL,
    nickname VARCHAR(64) NOT NULL,
    scope INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE user_address (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL UNIQUE,
    name VARCHAR(30) NOT NULL,
    mobile VARCHAR(20) NOT NULL,
    province VARCHAR(30) NOT NULL,
    city VARCHAR(30) NOT NULL,
    district VARCHAR(30) NOT NULL,
    detail VARCHAR(120) NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id)
);

CREATE TABLE user_token (
    token VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id INTEGER NOT NULL,
    scope INTEGER NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id)
);

CREATE INDEX idx_user_token_user ON user_token (user_id);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_no VARCHAR(32) NOT NULL UNIQUE,
    user_id INTEGER NOT NULL,
    status INTEGER NOT NULL,
    total_price BIGINT NOT NULL,
    total_count INTEGER NOT NULL,
    snap_name VARCHAR(120) NOT NULL,
    snap_img VARCHAR(255) NOT NULL,
    snap_address TEXT NOT NULL,
    snap_items TEXT NOT NULL,
    pay_channel VARCHAR(32) NULL,
    pay_name VARCHAR(32) NULL,
    transaction_no VARCHAR(64) NULL,
    paid_at TIMESTAMP NULL,
    expires_at TIMESTAMP NOT NULL,
    closed_at TIMESTAMP NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id)
);

CREATE INDEX idx_orders_user ON orders (user_id, id);

CREATE INDEX idx_orders_status_expiry ON orders (status, expires_at);

CREATE TABLE order_product (
    order_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id),
    FOREIGN KEY (order_id) REFERENCES orders (id),
    FOREIGN KEY (product_id) REFERENCES products (id)
);

CREATE TABLE pay_attempt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    out_trade_no VARCHAR(32) NOT NULL UNIQUE,
    provider VARCHAR(16) NOT NULL,
    channel VARCHAR(16) NOT NULL,
    amount BIGINT NOT NULL,
    status INTEGER NOT NULL,
    sign_type VARCHAR(16) NULL,
    provider_ref VARCHAR(64) NULL,
    credential TEXT NULL,
    transaction_no VARCHAR(64) NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    FOREIGN KEY (order_id) REFERENCES orders (id)
);

CREATE INDEX idx_pay_attempt_order ON pay_attempt (order_id);

CREATE INDEX idx_pay_attempt_status ON pay_attempt (status, created_at);

CREATE TABLE pay_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider VARCHAR(16) NOT NULL,
    kind VARCHAR(24) NOT NULL,
    out_trade_no VARCHAR(32) NULL,
    order_id INTEGER NULL,
    dedupe_key VARCHAR(96) NULL UNIQUE,
    raw_body TEXT NOT NULL,
    headers TEXT NOT NULL,
    remote_addr VARCHAR(64) NOT NULL,
    verified BOOLEAN NOT NULL,
    outcome VARCHAR(64) NOT NULL,
    reply TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX idx_pay_log_out_trade_no ON pay_log (out_trade_no);

CREATE INDEX idx_pay_log_order ON pay_log (order_id);

CREATE INDEX idx_pay_log_created ON pay_log (created_at);

CREATE TABLE refund (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL,
    out_refund_no VARCHAR(64) NOT NULL UNIQUE,
    amount BIGINT NOT NULL,
    reason VARCHAR(255) NOT NULL,
    status INTEGER NOT NULL,
    provider_ref VARCHAR(64) NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    FOREIGN KEY (order_id) REFERENCES orders (id),
    FOREIGN KEY (attempt_id) REFERENCES pay_attempt (id)
);

CREATE INDEX idx_refund_order ON refund (order_id);
