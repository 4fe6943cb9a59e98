//! The tables, written by hand with only the SQL types all three backends share.

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        price -> BigInt,
        stock -> Integer,
        main_img_url -> Text,
        summary -> Text,
        on_sale -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Integer,
        openid -> Nullable<Text>,
        username -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        nickname -> Text,
        scope -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        session_version -> Integer,
    }
}

diesel::table! {
    job_lease (name) {
        name -> Text,
        holder -> Text,
        expires_at -> Timestamp,
        last_run_at -> Nullable<Timestamp>,
        last_outcome -> Nullable<Text>,
        runs -> BigInt,
    }
}

diesel::table! {
    login_throttle (name_key) {
        name_key -> Text,
        failures -> Integer,
        locked_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    user_address (id) {
        id -> Integer,
        user_id -> Integer,
        name -> Text,
        mobile -> Text,
        province -> Text,
        city -> Text,
        district -> Text,
        detail -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    user_token (token) {
        token -> Text,
        user_id -> Integer,
        scope -> Integer,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    orders (id) {
        id -> Integer,
        order_no -> Text,
        user_id -> Integer,
        status -> Integer,
        total_price -> BigInt,
        total_count -> Integer,
        snap_name -> Text,
        snap_img -> Text,
        snap_address -> Text,
        snap_items -> Text,
        pay_channel -> Nullable<Text>,
        pay_name -> Nullable<Text>,
        transaction_no -> Nullable<Text>,
        paid_at -> Nullable<Timestamp>,
        expires_at -> Timestamp,
        closed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    order_product (order_id, product_id) {
        order_id -> Integer,
        product_id -> Integer,
        count -> Integer,
    }
}

diesel::table! {
    pay_attempt (id) {
        id -> Integer,
        order_id -> Integer,
        out_trade_no -> Text,
        provider -> Text,
        channel -> Text,
        amount -> BigInt,
        status -> Integer,
        sign_type -> Nullable<Text>,
        provider_ref -> Nullable<Text>,
        credential -> Nullable<Text>,
        transaction_no -> Nullable<Text>,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        query_count -> Integer,
        next_query_at -> Nullable<Timestamp>,
        not_found_count -> Integer,
        asked_at -> Nullable<Timestamp>,
        payer -> Nullable<Text>,
    }
}

diesel::table! {
    pay_log (id) {
        id -> Integer,
        provider -> Text,
        kind -> Text,
        out_trade_no -> Nullable<Text>,
        order_id -> Nullable<Integer>,
        dedupe_key -> Nullable<Text>,
        raw_body -> Text,
        headers -> Text,
        remote_addr -> Text,
        verified -> Bool,
        outcome -> Text,
        reply -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    refund (id) {
        id -> Integer,
        order_id -> Integer,
        attempt_id -> Integer,
        out_refund_no -> Text,
        amount -> BigInt,
        reason -> Text,
        status -> Integer,
        provider_ref -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        tries -> Integer,
        next_try_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    order_event (id) {
        id -> Integer,
        order_id -> Integer,
        kind -> Text,
        from_status -> Nullable<Integer>,
        to_status -> Nullable<Integer>,
        actor -> Text,
        note -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    shipment (id) {
        id -> Integer,
        order_id -> Integer,
        carrier -> Text,
        tracking_no -> Text,
        actor -> Text,
        created_at -> Timestamp,
        upload_status -> Integer,
        upload_tries -> Integer,
        upload_next_at -> Nullable<Timestamp>,
        upload_error -> Nullable<Text>,
    }
}

diesel::table! {
    api_token (name) {
        name -> Text,
        token -> Text,
        expires_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    recon_run (id) {
        id -> Integer,
        bill_date -> Text,
        provider -> Text,
        status -> Text,
        payments -> Integer,
        payment_total -> BigInt,
        refunds -> Integer,
        refund_total -> BigInt,
        fee_e5 -> BigInt,
        differences -> Integer,
        error -> Nullable<Text>,
        finished_at -> Timestamp,
    }
}

diesel::table! {
    recon_diff (id) {
        id -> Integer,
        bill_date -> Text,
        provider -> Text,
        kind -> Text,
        out_trade_no -> Nullable<Text>,
        out_refund_no -> Nullable<Text>,
        order_id -> Nullable<Integer>,
        shop_value -> Text,
        platform_value -> Text,
        action -> Text,
        resolved_by -> Nullable<Text>,
        resolved_note -> Nullable<Text>,
        resolved_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(order_event -> orders (order_id));
diesel::joinable!(shipment -> orders (order_id));
diesel::joinable!(order_product -> orders (order_id));
diesel::joinable!(order_product -> products (product_id));
diesel::joinable!(orders -> users (user_id));
diesel::joinable!(user_address -> users (user_id));
diesel::joinable!(user_token -> users (user_id));
diesel::joinable!(pay_attempt -> orders (order_id));
diesel::joinable!(refund -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_token,
    job_lease,
    login_throttle,
    products,
    users,
    user_address,
    user_token,
    orders,
    order_product,
    pay_attempt,
    pay_log,
    refund,
    order_event,
    shipment,
    recon_run,
    recon_diff,
);
