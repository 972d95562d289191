-- Each inbound message's format (hl7v2 | fhir+json | fhir+xml), decided where it entered:
-- replay decodes the stored bytes by it. Rows stored before this column existed came in
-- through the FHIR channels (`fhir`, `fhir-pull:...`) or as HL7 v2; a FHIR body is XML
-- when `<` comes before any `{`.
ALTER TABLE inbound_messages ADD COLUMN format text NOT NULL DEFAULT 'hl7v2'
    CHECK (format IN ('hl7v2', 'fhir+json', 'fhir+xml'));
UPDATE inbound_messages
   SET format = CASE
       WHEN position('\x3c'::bytea IN raw) > 0
        AND (position('\x7b'::bytea IN raw) = 0 OR position('\x3c'::bytea IN raw) < position('\x7b'::bytea IN raw))
       THEN 'fhir+xml' ELSE 'fhir+json' END
 WHERE channel = 'fhir' OR channel LIKE 'fhir-%';
