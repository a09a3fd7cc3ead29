CREATE SCHEMA crm;
CREATE TABLE crm.customers (
    id         int PRIMARY KEY,
    name       text NOT NULL,
    address    text,
    zip        text,
    notes      text,
    updated_by text
);
