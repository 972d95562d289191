// Medplum's Hl7Server as a benchmark peer: parses each message and answers its ACK
// (message.buildAck()); it stores nothing. Usage: node medplum.mjs PORT
import { Hl7Server } from '@medplum/hl7';

const port = Number(process.argv[2] || 2575);
const server = new Hl7Server((connection) => {
  connection.addEventListener('message', ({ message }) => {
    connection.send(message.buildAck());
  });
});
server.start(port);
console.log(`listening: mllp 127.0.0.1:${port}`);
