SELECT
    order_id,
    customer_id,
    amount,
    status,
    CAST(placed_at AS TIMESTAMP) AS placed_at
FROM raw_orders
