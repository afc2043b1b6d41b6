-- When the buyer's money was first known to be held for an order. From then on the order
-- belongs to settlement (commit the units, capture, mark paid): a cancel, a failed-payment
-- webhook or the expiry sweep no longer moves it (checkout/settlement.py).
ALTER TABLE orders ADD COLUMN authorized_at DOUBLE PRECISION
