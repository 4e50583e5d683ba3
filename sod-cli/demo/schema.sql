-- The demo schema: customers with personal data, and their orders.
-- Created when missing; seeded only when empty.
CREATE TABLE IF NOT EXISTS public.customers (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    phone       text NOT NULL,
    ssn         text NOT NULL,
    card_number text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES public.customers (id),
    amount      numeric(10, 2) NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO public.customers (id, name, email, phone, ssn, card_number, created_at)
SELECT g,
       (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'John'])[1 + g % 8]
           || ' ' || (ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Backus'])[1 + (g / 8) % 8],
       'customer' || g || '@example.com',
       '+1-555-' || lpad((1000 + g)::text, 4, '0'),
       lpad((100 + g % 800)::text, 3, '0') || '-' || lpad((10 + g % 89)::text, 2, '0') || '-' || lpad((1000 + g * 7 % 9000)::text, 4, '0'),
       '4111 1111 ' || lpad((g * 37 % 10000)::text, 4, '0') || ' ' || lpad((g * 91 % 10000)::text, 4, '0'),
       now() - (g || ' days')::interval
FROM generate_series(1, 200) AS g
WHERE NOT EXISTS (SELECT 1 FROM public.customers);

INSERT INTO public.orders (id, customer_id, amount, status, created_at)
SELECT g,
       1 + g * 7 % 200,
       round((5 + g * 13 % 500)::numeric + (g % 100) / 100.0, 2),
       (ARRAY['new', 'paid', 'shipped', 'delivered'])[1 + g % 4],
       now() - (g % 90 || ' days')::interval
FROM generate_series(1, 600) AS g
WHERE NOT EXISTS (SELECT 1 FROM public.orders);
