-- Each inbound message's format (hl7v2 | fhir+json | fhir+xml), decided where it entered:
-- replay decodes the stored bytes by it. Rows stored before this column existed came in
-- through the FHIR channels (`fhir`, `fhir-pull:...`) or as HL7 v2; a FHIR body is XML
-- when `<` comes before any `{`.
ALTER TABLE inbound_messages ADD COLUMN format TEXT NOT NULL DEFAULT 'hl7v2';
UPDATE inbound_messages
   SET format = CASE
       WHEN instr(raw, X'3C') > 0 AND (instr(raw, X'7B') = 0 OR instr(raw, X'3C') < instr(raw, X'7B'))
       THEN 'fhir+xml' ELSE 'fhir+json' END
 WHERE channel = 'fhir' OR channel LIKE 'fhir-%';
