-- The demo pipeline: run by `faust -A app worker` with TABLESTREAM_PIPELINE=examples/orders/pipeline.sql.
-- Two reference tables (compacted topics), one event stream, three continuous queries.

CREATE TABLE users (
  id BIGINT, name VARCHAR, tier VARCHAR, country VARCHAR, blocked BOOLEAN,
  PRIMARY KEY (id)
) WITH (topic='users', format='json', partitions='3');

CREATE TABLE limits (
  symbol VARCHAR, max_price DECIMAL(10,2),
  PRIMARY KEY (symbol)
) WITH (topic='limits', format='json', partitions='1');

-- Orders are in event-time order within a partition, but a query that starts (or restarts)
-- behind reads its backlog partition after partition: out of order by up to the backlog's
-- age. 30s covers a worker's start (group join, table loading) without a valid order counted
-- as late; windows close (their state is dropped) 30 s of event time after their end.
CREATE STREAM orders (
  order_id BIGINT, user_id BIGINT, symbol VARCHAR, price DECIMAL(10,2), qty INT, ts BIGINT
) WITH (topic='orders', timestamp='ts', partitions='3', out_of_orderness='30s');

-- Every order with its decision: a stream-table LEFT JOIN, a correlated scalar subquery (the
-- symbol's limit, a key lookup), NOT EXISTS (unknown symbol) and IN (a maintained set of
-- blocked users). Later items reuse earlier aliases.
CREATE STREAM checked_orders WITH (topic='checked_orders', partitions='3') AS
SELECT
  o.order_id,
  o.user_id,
  u.name,
  u.tier,
  o.symbol,
  o.price,
  o.qty,
  o.price * o.qty AS notional,
  (SELECT max_price FROM limits l WHERE l.symbol = o.symbol) AS max_price,
  CASE
    WHEN NOT EXISTS (SELECT 1 FROM limits l WHERE l.symbol = o.symbol) THEN 'unknown symbol'
    WHEN o.user_id IN (SELECT id FROM users WHERE blocked) THEN 'blocked user'
    WHEN o.price > max_price THEN 'over limit'
    ELSE 'accepted'
  END AS status
FROM orders o
LEFT JOIN users u ON u.id = o.user_id
EMIT CHANGES;

-- Orders of gold users that are not blocked: IN over a maintained set, NOT EXISTS by key.
CREATE STREAM gold_orders WITH (topic='gold_orders', partitions='3') AS
SELECT o.order_id, o.user_id, o.symbol, o.price * o.qty AS notional
FROM orders o
WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold')
  AND NOT EXISTS (SELECT 1 FROM users b WHERE b.id = o.user_id AND b.blocked)
EMIT CHANGES;

-- Traded notional per symbol in 10-second event-time windows, updated on every order.
CREATE TABLE volume_by_symbol WITH (topic='volume_by_symbol', partitions='1') AS
SELECT symbol, window_start, window_end, COUNT(*) AS orders, SUM(price * qty) AS notional
FROM orders
WINDOW TUMBLING (SIZE 10 SECONDS)
GROUP BY symbol
EMIT CHANGES;
