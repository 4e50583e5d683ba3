-- Loaded by `cargo xtask bench pg-masking` before the runs (as the executor).
CREATE TABLE IF NOT EXISTS bench_customers (
    id int PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    phone text NOT NULL,
    balance numeric NOT NULL
);
INSERT INTO bench_customers
SELECT g, 'customer ' || g, 'user' || g || '@example.com', '+1-555-' || lpad(g::text, 7, '0'), g * 3
FROM generate_series(1, 100000) g
ON CONFLICT DO NOTHING;
ANALYZE bench_customers;
