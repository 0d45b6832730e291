// Reading recipients from pasted text or a CSV file, and saying clearly what is wrong
// before anything is sent: invalid numbers (with their line) and duplicates.

const PHONE_HEADERS = ["phone", "phone_number", "number", "recipient", "whatsapp", "wa", "msisdn", "mobile", "nomor", "no_hp", "nomor_hp", "hp", "handphone", "telepon", "telp", "no_telp", "no_wa", "nomor_wa"];
const LOOKS_LIKE_PHONE = /^[+\d(][\d\s\-().+]{6,}$/;

/** Split one CSV line, honouring double quotes. */
function splitCsv(line, sep) {
  const out = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i += 1;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === sep) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out.map((c) => c.trim());
}

/** Where the New campaign form remembers its country code (for numbers written with a leading 0). */
export const COUNTRY_CODE_KEY = "campaignd.country_code";

/**
 * What a contacts search asks for: the digits typed (the daemon matches the start of the
 * number and reads a leading 00 as "+"), with a national leading 0 replaced by the
 * remembered country code, as the New campaign form reads such numbers.
 */
export function searchDigits(raw, countryCode) {
  const text = String(raw).trim();
  const digits = text.replace(/\D/g, "");
  if (!text.startsWith("+") && /^0[1-9]/.test(digits) && countryCode) return countryCode + digits.slice(1);
  return digits;
}

/**
 * Digits only, "+", spaces, dashes, dots and brackets removed; "@c.us" dropped.
 * A problem is a code (empty, local, not_phone, too_short, too_long) the form words.
 */
export function normalize(raw, countryCode) {
  let s = String(raw).trim().replace(/@(c\.us|s\.whatsapp\.net)$/i, "");
  if (!s) return { error: "empty" };
  const plus = s.startsWith("+");
  s = s.replace(/[\s\-().+]/g, "");
  if (s.startsWith("00")) s = s.slice(2);
  else if (!plus && s.startsWith("0")) {
    if (!countryCode) return { error: "local" };
    s = countryCode + s.replace(/^0+/, "");
  }
  if (!/^\d+$/.test(s)) return { error: "not_phone" };
  if (s.length < 8) return { error: "too_short" };
  if (s.length > 15) return { error: "too_long" };
  return { number: s };
}

/**
 * Parse pasted text or CSV into {valid, invalid:[{line, value, error}], duplicates:[{line, number}]}.
 * A CSV with a header uses its phone column; otherwise every cell that looks like a number.
 */
export function parseRecipients(text, countryCode = "") {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  // The separator: the one the first line uses most (a comma inside quotes is no vote).
  const first = (lines.find((l) => l.trim()) || "").replace(/"[^"]*"/g, "");
  const votes = [",", ";", "\t"].map((c) => [c, first.split(c).length - 1]).sort((a, b) => b[1] - a[1]);
  const sep = votes[0][1] > 0 ? votes[0][0] : ",";
  let column = -1;
  let start = 0;
  const rawFirst = splitCsv(lines[0] || "", sep);
  const firstCells = rawFirst.map((c) => c.toLowerCase().replace(/[\s-]+/g, "_"));
  const headerAt = firstCells.findIndex((c) => PHONE_HEADERS.includes(c));
  if (headerAt >= 0) {
    column = headerAt;
    start = 1;
  } else if (rawFirst.length > 1 && !rawFirst.some((c) => LOOKS_LIKE_PHONE.test(c))) {
    start = 1; // a header without a column name we know: numbers are found per line
  }
  const seen = new Set();
  const result = { valid: [], invalid: [], duplicates: [], column: headerAt >= 0 ? firstCells[headerAt] : null };
  for (let i = start; i < lines.length; i += 1) {
    const line = lines[i];
    if (!line.trim()) continue;
    let cells = splitCsv(line, sep);
    if (column >= 0) cells = [cells[column] ?? ""];
    else if (cells.length > 1) {
      // No header: take the first cell that looks like a number (names may come first).
      const phone = cells.find((c) => LOOKS_LIKE_PHONE.test(c));
      cells = [phone ?? cells[0]];
    }
    for (const cell of cells) {
      const { number, error } = normalize(cell, countryCode);
      if (error) {
        result.invalid.push({ line: i + 1, value: cell, error });
      } else if (seen.has(number)) {
        result.duplicates.push({ line: i + 1, number });
      } else {
        seen.add(number);
        result.valid.push(number);
      }
    }
  }
  return result;
}
