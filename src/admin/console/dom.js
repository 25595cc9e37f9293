// Small DOM and formatting helpers shared by the console's modules. Text always goes in as text
// (textContent), never as HTML: store keys and error messages come from user data.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An element with attributes (`class`, `data-*`, ...) and children (strings become text nodes). */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  element.append(...children.filter((child) => child !== undefined && child !== null));
  return element;
}

/** The same for SVG elements. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attributes);
  element.append(...children.filter((child) => child !== undefined && child !== null));
  return element;
}

function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) element.setAttribute(name, String(value));
  }
}

/** A store time as the reads give it (`{ iso, ms }`): shown as its ISO text. */
const isStoreTime = (value) =>
  value !== null &&
  typeof value === 'object' &&
  typeof value.iso === 'string' &&
  Object.keys(value).every((field) => field === 'iso' || field === 'ms');

/** Any JSON value as one line of text: strings as they are, times as ISO text, the rest as JSON. */
export function jsonText(value) {
  if (typeof value === 'string') return value;
  if (isStoreTime(value)) return value.iso;
  return JSON.stringify(value, (_key, inner) => (isStoreTime(inner) ? inner.iso : inner));
}

/** An object as one `field: value` line per field (other values as jsonText), for table cells. */
export function fieldsText(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || isStoreTime(value))
    return jsonText(value);
  return Object.entries(value)
    .map(([field, inner]) => `${field}: ${jsonText(inner)}`)
    .join('\n');
}

export function formatNumber(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { maximumFractionDigits: value < 10 ? 1 : 0 });
}

/** A duration in ms as `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`. */
export function formatDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  const sign = ms < 0 ? '−' : '';
  const abs = Math.abs(ms);
  if (abs < 1000) return `${sign}${Math.round(abs)} ms`;
  if (abs < 60_000) return `${sign}${(abs / 1000).toFixed(1)} s`;
  if (abs < 3_600_000) return `${sign}${Math.floor(abs / 60_000)} min ${Math.floor((abs % 60_000) / 1000)} s`;
  return `${sign}${Math.floor(abs / 3_600_000)} h ${Math.floor((abs % 3_600_000) / 60_000)} min`;
}

/** Epoch ms as a UTC time of day (with the date when it is not today). */
export function formatTime(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  const iso = new Date(ms).toISOString();
  const today = new Date().toISOString().slice(0, 10);
  return iso.slice(0, 10) === today ? iso.slice(11, 19) : `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}

/** Replaces the options of a <select>, keeping the selected value when it is still there. */
export function setOptions(select, options) {
  const previous = select.value;
  select.replaceChildren(...options.map(({ value, label }) => el('option', { value }, label)));
  if (options.some((option) => option.value === previous)) select.value = previous;
}
