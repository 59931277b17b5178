-- What an operator asks of the ledger: since when a row has been pending,
-- whether its latest failure was permanent, and whether someone
-- acknowledged it (Forget).
--
-- first_at: when the record for the row's current instance was first
-- written (its first grace or failed attempt), by the database's clock.
-- Records that exist when this version is applied take the time of the
-- migration. permanent: the latest recorded failure was permanent.
-- acknowledged_at: when Forget acknowledged the leak; the row's next_at
-- is then 'infinity', so Pending never returns it again.
ALTER TABLE {{attempts}}
    ADD COLUMN IF NOT EXISTS first_at        timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS permanent       boolean     NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz;
