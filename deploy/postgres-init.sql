-- The table compose.yaml's govflow reads (docs/postgres-tables.md), with a few rows,
-- and a read-only role for govflow (the source connects read-only anyway).
CREATE TABLE point_transaction (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    points bigint NOT NULL,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO point_transaction (id, customer_id, points, reason)
SELECT i, 1 + i % 50, 10 * (1 + i % 7), 'order'
FROM generate_series(1, 200) AS i;
