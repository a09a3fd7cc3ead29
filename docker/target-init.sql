CREATE SCHEMA billing;
CREATE TABLE billing.customers (
    id              int PRIMARY KEY,
    name            text NOT NULL,
    billing_address text,
    zip             text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
