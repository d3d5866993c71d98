-- Runs once, when the postgresql service's data volume is first created.
-- The image has already created the superuser "temporal" and its database
-- "temporal" (Temporal's persistence); Temporal's visibility store and
-- smartcopy's own data get databases of their own.
CREATE DATABASE temporal_visibility OWNER temporal;
CREATE ROLE smartcopy LOGIN PASSWORD 'smartcopy';
CREATE DATABASE smartcopy OWNER smartcopy;
