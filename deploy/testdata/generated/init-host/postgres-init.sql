-- Written by "wellknownd init": Dendrite's role and database.
-- Run it once as PostgreSQL's superuser; the shell reads the file, so it may
-- stay readable by root alone:  sudo -u postgres psql < postgres-init.sql
CREATE ROLE dendrite LOGIN PASSWORD 'it''s';
CREATE DATABASE dendrite OWNER dendrite ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
