// The province's clock for the organizers' pages: every time they show or take is in Asia/Shanghai
// (China Standard Time, UTC+08:00, no daylight saving), whatever the browser's own zone, so one page
// never mixes zones. The topology names no zone; this is the one place that does. Pure functions.
"use strict";
const PROVINCE = { zone: "Asia/Shanghai", offset: "+08:00", label: "times in China Standard Time, UTC+08:00" };

const PROVINCE_PARTS = new Intl.DateTimeFormat("en-GB", {
  timeZone: PROVINCE.zone, year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
// Day headings name a calendar date, which has no zone: formatted at noon UTC of that date.
const DAY_HEADING = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" });
const DAY_LONG = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "long", day: "numeric", month: "long", year: "numeric" });

// t: a Date, an ISO 8601 string with an offset, or epoch milliseconds.
function provinceParts(t) {
  const p = Object.fromEntries(PROVINCE_PARTS.formatToParts(t instanceof Date ? t : new Date(t)).map((x) => [x.type, x.value]));
  return { ymd: `${p.year}-${p.month}-${p.day}`, hh: p.hour, mm: p.minute, ss: p.second };
}

function provinceDay(t) { return provinceParts(t).ymd; }                      // "2026-12-08"
function provinceClock(t, seconds = false) {                                 // "09:38" or "09:38:59"
  const p = provinceParts(t);
  return `${p.hh}:${p.mm}${seconds ? ":" + p.ss : ""}`;
}
function provinceWhen(t) { const p = provinceParts(t); return `${p.ymd} ${p.hh}:${p.mm}`; }  // "2026-12-08 09:38"
function provinceInput(t) { const p = provinceParts(t); return `${p.ymd}T${p.hh}:${p.mm}`; } // for datetime-local

// A span as a person reads it: "09:00–10:30". When both ends fall in one minute (an emergency ended
// soon after it opened) the seconds are shown, so a real start and end never read as "03:54–03:54";
// an end on a later day says which.
function provinceSpan(start, end) {
  const a = provinceParts(start), b = provinceParts(end);
  const sameMinute = a.ymd === b.ymd && a.hh === b.hh && a.mm === b.mm;
  const clock = (p) => `${p.hh}:${p.mm}${sameMinute ? ":" + p.ss : ""}`;
  return `${clock(a)}–${a.ymd === b.ymd ? "" : dayHeading(b.ymd) + " "}${clock(b)}`;
}

// Calendar dates ("YYYY-MM-DD") in the province: their midnight, arithmetic, weekday, headings.
function dayStartMs(ymd) { return Date.parse(`${ymd}T00:00:00${PROVINCE.offset}`); }
function addDays(ymd, n) { return new Date(Date.parse(`${ymd}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10); }
function mondayOf(ymd) { return addDays(ymd, -((new Date(`${ymd}T00:00:00Z`).getUTCDay() + 6) % 7)); }
function dayHeading(ymd) { return DAY_HEADING.format(new Date(`${ymd}T12:00:00Z`)); }   // "Tue 8 Dec"
function dayLong(ymd) { return DAY_LONG.format(new Date(`${ymd}T12:00:00Z`)); }
function provinceToday() { return provinceDay(new Date()); }
function isYmd(s) { return /^\d{4}-\d{2}-\d{2}$/.test(s || "") && !Number.isNaN(Date.parse(`${s}T00:00:00Z`)); }
