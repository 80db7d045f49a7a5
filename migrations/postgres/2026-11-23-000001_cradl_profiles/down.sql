DROP TABLE accounts;
ALTER TABLE users DROP COLUMN kyc_id;
ALTER TABLE users DROP COLUMN last_name;
ALTER TABLE users DROP COLUMN first_name;
ALTER TABLE users DROP COLUMN phone_number;
ALTER TABLE users DROP COLUMN password_hash;
