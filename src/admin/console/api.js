// The console's requests to its admin endpoint. The bearer token, when the instance has one, is asked
// for once and kept in this tab's sessionStorage; every data request carries it.

const TOKEN_KEY = 'tributary.adminToken';

/** The endpoint answered 401: the page must ask for (another) token. */
export class Unauthorized extends Error {}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * GET `path` as JSON: `{ status, body }` for any answer but 401 (which throws Unauthorized); a
 * network failure rejects as fetch does.
 */
export async function getJson(path) {
  const token = storedToken();
  const response = await fetch(path, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    cache: 'no-store',
  });
  if (response.status === 401) throw new Unauthorized('the admin endpoint wants a valid token');
  const text = await response.text();
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

/** The message of an error answer (`{ error }` from our routes, `{ message }` from fastify's own). */
export function errorMessage({ status, body }) {
  if (body && typeof body === 'object') return body.error ?? body.message ?? `HTTP ${status}`;
  return typeof body === 'string' && body !== '' ? body : `HTTP ${status}`;
}
