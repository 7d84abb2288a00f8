// A test SMSC for the smpp provider's tests, on the server side of the npm `smpp` package (an
// SMPP implementation nobody on this project wrote), over real TCP on 127.0.0.1.
//
// Every event is one JSON line on stdout: {"event":"listening","port":…} first, then "bind",
// "submit_sm" (each as received: the package's own decoding of addresses, data_coding, UDH and
// text), "submit_sm_resp" (when an answer is written), "throttled", "drop", "receipt_acked",
// "enquire_link", "unbind". Commands arrive as JSON lines on stdin:
//   {"cmd":"drop_after","n":N}        close the connection abruptly at the N-th next submit_sm,
//                                     leaving it and every unanswered one without a response
//   {"cmd":"throttle","secs":S}       answer ESME_RTHROTTLED to every submit_sm for S seconds
//   {"cmd":"resp_delay","ms":M}       answer submit_sm after M ms (so a window fills up)
//   {"cmd":"receipts","form":F}       "tlv", "text", "both" (default) or "none"
//   {"cmd":"refuse","status":C,"n":N} answer the next N submit_sm with command_status C
// A receipt (deliver_sm, message state DELIVRD) follows every answered submit_sm that asked for
// one; receipts not acknowledged (connection lost) are offered again on the next bind.
//
// Environment: SMSC_SYSTEM_ID / SMSC_PASSWORD (the account; a wrong one is ESME_RBINDFAIL).
'use strict';

const smpp = require('smpp');
const readline = require('readline');

const systemId = process.env.SMSC_SYSTEM_ID || 'smsgate';
const password = process.env.SMSC_PASSWORD || 'secret';

const ESME_RTHROTTLED = 0x58;

let nextId = 1;
let throttleUntil = 0;
let dropAfter = 0;
let respDelay = 0;
let receiptForm = 'both';
let refuseStatus = 0;
let refuseCount = 0;
const pendingReceipts = [];
const sessions = new Set();

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function hex(buffer) {
  return Buffer.isBuffer(buffer) ? buffer.toString('hex') : null;
}

function smscTime(date) {
  const p = (n) => String(n).padStart(2, '0');
  return `${p(date.getUTCFullYear() % 100)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}` +
    `${p(date.getUTCHours())}${p(date.getUTCMinutes())}`;
}

function sendReceipts() {
  const bound = [...sessions].filter((s) => s.bound && !s.closed);
  if (bound.length === 0) return;
  while (pendingReceipts.length > 0) {
    const receipt = pendingReceipts.shift();
    const session = bound[Math.floor(Math.random() * bound.length)];
    const now = smscTime(new Date());
    const pdu = {
      source_addr: receipt.destination_addr,
      destination_addr: receipt.source_addr || '',
      esm_class: 0x04,
    };
    if (receiptForm !== 'tlv') {
      pdu.short_message = `id:${receipt.message_id} sub:001 dlvr:001 submit date:${now} ` +
        `done date:${now} stat:DELIVRD err:000 text:`;
    }
    if (receiptForm !== 'text') {
      pdu.receipted_message_id = receipt.message_id;
      pdu.message_state = 2;
    }
    session.deliver_sm(pdu, (resp) => {
      session.pendingReceipts.delete(receipt.message_id);
      if (resp.command_status === 0) {
        emit({ event: 'receipt_acked', message_id: receipt.message_id });
      } else {
        // Refused for now: offer it again shortly.
        pendingReceipts.push(receipt);
        setTimeout(sendReceipts, 200);
      }
    });
    session.pendingReceipts.set(receipt.message_id, receipt);
  }
}

const server = smpp.createServer({ debug: false }, (session) => {
  const id = nextId++;
  session.id = id;
  session.bound = false;
  session.closed = false;
  session.unanswered = new Set();
  session.pendingReceipts = new Map();
  sessions.add(session);

  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== systemId || pdu.password !== password) {
      emit({ event: 'bind_refused', session: id, system_id: pdu.system_id });
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      return;
    }
    session.bound = true;
    emit({ event: 'bind', session: id, system_id: pdu.system_id, system_type: pdu.system_type,
      interface_version: pdu.interface_version });
    session.send(pdu.response({ system_id: 'testsmsc' }));
    setImmediate(sendReceipts);
  });

  session.on('submit_sm', (pdu) => {
    // PDUs still in the read buffer when the connection was cut were lost with it.
    if (session.closed) {
      emit({ event: 'discarded', session: id, sequence_number: pdu.sequence_number });
      return;
    }
    if (!session.bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const sm = pdu.short_message || {};
    const record = {
      session: id,
      sequence_number: pdu.sequence_number,
      source_addr: pdu.source_addr,
      source_addr_ton: pdu.source_addr_ton,
      destination_addr: pdu.destination_addr,
      dest_addr_ton: pdu.dest_addr_ton,
      dest_addr_npi: pdu.dest_addr_npi,
      esm_class: pdu.esm_class,
      data_coding: pdu.data_coding,
      registered_delivery: pdu.registered_delivery,
      udh: Array.isArray(sm.udh) ? sm.udh.map(hex) : [],
      text: typeof sm.message === 'string' ? sm.message : null,
      sar_msg_ref_num: pdu.sar_msg_ref_num,
      sar_total_segments: pdu.sar_total_segments,
      sar_segment_seqnum: pdu.sar_segment_seqnum,
    };
    if (Date.now() < throttleUntil) {
      emit(Object.assign({ event: 'throttled' }, record));
      session.send(pdu.response({ command_status: ESME_RTHROTTLED }));
      return;
    }
    if (refuseCount > 0) {
      refuseCount -= 1;
      emit(Object.assign({ event: 'refused', command_status: refuseStatus }, record));
      session.send(pdu.response({ command_status: refuseStatus }));
      return;
    }
    const messageId = `m${(nextId++).toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
    emit(Object.assign({ event: 'submit_sm', message_id: messageId }, record));
    session.unanswered.add(pdu.sequence_number);
    if (dropAfter > 0) {
      dropAfter -= 1;
      if (dropAfter === 0) {
        emit({ event: 'drop', session: id, unanswered: session.unanswered.size });
        session.closed = true;
        session.socket.destroy();
        return;
      }
    }
    const answer = () => {
      if (session.closed) return;
      session.unanswered.delete(pdu.sequence_number);
      session.send(pdu.response({ message_id: messageId }));
      emit({ event: 'submit_sm_resp', session: id, message_id: messageId,
        sequence_number: pdu.sequence_number });
      if ((pdu.registered_delivery & 0x03) !== 0 && receiptForm !== 'none') {
        pendingReceipts.push({ message_id: messageId, destination_addr: pdu.destination_addr,
          source_addr: pdu.source_addr });
        setImmediate(sendReceipts);
      }
    };
    if (respDelay > 0) setTimeout(answer, respDelay); else answer();
  });

  session.on('enquire_link', (pdu) => {
    emit({ event: 'enquire_link', session: id });
    session.send(pdu.response());
  });

  session.on('unbind', (pdu) => {
    emit({ event: 'unbind', session: id });
    session.send(pdu.response());
    session.closed = true;
    session.close();
  });

  session.on('deliver_sm_resp', (pdu) => {
    // Matched by the package's own callback; nothing else to do here.
    void pdu;
  });

  session.on('close', () => {
    session.closed = true;
    sessions.delete(session);
    // Receipts sent but never acknowledged on this connection are offered again.
    for (const receipt of session.pendingReceipts.values()) pendingReceipts.push(receipt);
    session.pendingReceipts.clear();
    setImmediate(sendReceipts);
    emit({ event: 'closed', session: id });
  });

  session.on('error', (e) => {
    emit({ event: 'session_error', session: id, error: String(e && e.message) });
  });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch (e) {
    emit({ event: 'bad_command', line });
    return;
  }
  switch (command.cmd) {
    case 'drop_after': dropAfter = command.n; break;
    case 'throttle': throttleUntil = Date.now() + command.secs * 1000; break;
    case 'resp_delay': respDelay = command.ms; break;
    case 'receipts': receiptForm = command.form; break;
    case 'refuse': refuseStatus = command.status; refuseCount = command.n; break;
    default: emit({ event: 'bad_command', line }); return;
  }
  emit({ event: 'ok', cmd: command.cmd });
});

process.stdin.on('end', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  emit({ event: 'listening', port: server.address().port });
});
