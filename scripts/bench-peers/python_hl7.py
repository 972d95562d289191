"""python-hl7's asyncio MLLP server as a benchmark peer: parses each message and answers
message.create_ack(); it stores nothing. Usage: python python_hl7.py PORT"""
import asyncio
import sys

import hl7
from hl7.mllp import start_hl7_server


async def connected(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def main(port):
    async with await start_hl7_server(connected, host="127.0.0.1", port=port) as server:
        print(f"listening: mllp 127.0.0.1:{port}", flush=True)
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2575))
