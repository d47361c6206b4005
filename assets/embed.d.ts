// Type declarations of window.cartsync, the API that embed.js gives a
// storefront page (docs/embedding.md). embed.js itself is plain JavaScript
// with no exports; import from this module with `import type`.

/** A line's options: they identify the line (a size M tee and a size L tee are two lines). */
export type CartsyncOptions = Record<string, string>;

/** What the cart shows of a product; price in minor units (1999 = 19.99). */
export interface CartsyncDetails {
  name?: string;
  /** An http(s) URL, or a path on your site (made absolute against the page). */
  image?: string;
  price?: number;
  /** ISO 4217, e.g. "EUR". */
  currency?: string;
}

export interface CartsyncLine {
  /** The line's identity: the SKU and its options, e.g. "TEE-01?size=M". */
  key: string;
  sku: string;
  options: CartsyncOptions | null;
  quantity: number;
  details: CartsyncDetails;
}

/**
 * 'connecting' is the widget's first connection, or the next when a live one ends for a login, a
 * logout or a new cart the server hands over; once a connection failed or the browser went
 * offline, the status stays 'offline' while the widget tries again, until the server answers.
 */
export type CartsyncStatus = 'offline' | 'connecting' | 'syncing' | 'synced' | 'login';

/** The cart, as ready, change and most methods give it. */
export interface CartsyncCart {
  /** "g_…" for a guest's cart, "u_…" for a logged-in shopper's; "" until first synced. */
  id: string;
  lines: CartsyncLine[];
  /** The total quantity. */
  items: number;
  /** The last version the server confirmed. */
  version: number;
  /** True when no edit is waiting to be sent. */
  synced: boolean;
  /** Edits of this cart waiting to be sent. */
  pending: number;
  status: CartsyncStatus;
}

export interface CartsyncSync {
  status: CartsyncStatus;
  pending: number;
  version: number;
}

export type CartsyncPolicy = 'merge' | 'replace' | 'keep' | 'choose';

export interface CartsyncMerge {
  /** "merged": the login brought this device's lines; "already": nothing new; "choose": the shopper is asked. */
  status: 'merged' | 'already' | 'choose' | (string & {});
  policy: CartsyncPolicy | '';
  items: number;
  added: number;
  combined: number;
  replaced: number;
  /** With "merged": items this device had added that had not reached the server at the login; they reach the account cart after the merge, whatever the policy, and are not counted in items. */
  late: number;
  warnings: { code: string; message: string }[];
  version: number;
}

/** What login() and logout() resolve with. */
export interface CartsyncLogin {
  /** "done" once the cart server answered; "queued" offline or without an answer within 10 s. */
  status: 'done' | 'queued';
  merge: CartsyncMerge | null;
  cart: CartsyncCart;
}

export interface CartsyncCheckout {
  cart: CartsyncCart;
  version: number;
  /** The id of the snapshot the server recorded; your backend reads it by id. */
  checkout_id: string;
}

/**
 * The properties of theme(); the mount element's --cartsync-* custom properties by default, with
 * the script's data-locale and data-checkout-mode. A value given overrides them until given again;
 * null drops the override. embed.js sends what the widget took again at every ready (a new
 * mount, a reloaded widget).
 */
export interface CartsyncTheme {
  accent?: string | null;
  background?: string | null;
  foreground?: string | null;
  font?: string | null;
  radius?: string | null;
  /** The BCP 47 language tag prices are formatted for (data-locale); '' for the browser's language. */
  locale?: string | null;
  /** 'review': a review step before checkout; 'direct': checkout from the cart (data-checkout-mode). */
  checkout?: 'review' | 'direct' | null;
  /** Custom translations of the widget's texts, by message id, for the current locale's language; {} removes them. */
  messages?: Record<string, string>;
}

/** The codes of a CartsyncError (docs/embedding.md, Errors). */
export type CartsyncErrorCode =
  | 'invalid_sku'
  | 'invalid_quantity'
  | 'invalid_options'
  | 'invalid_details'
  | 'too_many_lines'
  | 'too_many_clients'
  | 'line_not_found'
  | 'bad_request'
  | 'unknown_method'
  | 'not_supported'
  | 'token_expired'
  | 'unauthorized'
  | 'superseded'
  | 'internal'
  | 'timeout'
  | 'not_ready'
  | 'unreachable'
  | 'interrupted'
  | 'no_mount'
  | 'not_configured'
  | 'not_mounted';

/**
 * Every rejection of window.cartsync, and the data of the error event. The
 * class is window.cartsync.Error (embed.js exports nothing: it is a script
 * that sets window.cartsync, so this package has types only). The loader
 * snippet's own rejections, before embed.js has run (not_ready,
 * unreachable), are plain Errors with this name, code and message.
 */
export interface CartsyncError extends Error {
  readonly name: 'CartsyncError';
  /** A CartsyncErrorCode, or a newer widget's code. */
  readonly code: CartsyncErrorCode | (string & {});
}

export interface CartsyncErrorConstructor {
  new (code: string, message?: string): CartsyncError;
  readonly prototype: CartsyncError;
}

/** Data of the expired event: why the device was handed a new cart. */
export interface CartsyncExpired {
  /**
   * 'expired': the cart went after the operator's retention without changes; 'erased': your
   * backend had the user forgotten.
   */
  reason: 'expired' | 'erased';
}

/** An edit the cart server refused. */
export interface CartsyncRejected {
  /** The line's SKU and key ("" when the widget no longer knows the edit). */
  sku: string;
  key: string;
  /** The product's name, when the edit carried one. */
  name?: string;
  /** Why: out_of_stock, not_sellable, unknown_sku, too_many_lines, cart_too_large, invalid_details, … */
  code: string;
  message: string;
  /** With out_of_stock and stock_clamped: how many of the SKU one cart may hold in all. */
  available?: number;
  /** With out_of_stock and stock_clamped: what sets that bound, the catalog's stock or its maximum per order. */
  limit_by?: 'stock' | 'per_order';
}

export interface CartsyncEvents {
  /**
   * The widget has loaded the cart from this device (before any network); after each mount().
   * A late handler is called with the current cart, none after destroy().
   */
  ready: CartsyncCart;
  /** The cart changed: an edit here, in another tab or device, a sync, a login or a logout. */
  change: CartsyncCart;
  /** The connection status or the number of waiting edits changed; a late handler gets the last, none after destroy(). */
  sync: CartsyncSync;
  /** A login met this device's cart with the shopper's account cart. */
  merge: CartsyncMerge;
  /** The cart server refused an edit this device made (out of stock, withdrawn, a limit); the cart shows it undone. */
  rejected: CartsyncRejected;
  /**
   * The cart server applied an edit this device made with a lower quantity than asked: code
   * stock_clamped (what the catalog has available, or its per-order maximum) or quantity_clamped
   * (the most a line holds). The cart shows the quantity it has.
   */
  reduced: CartsyncRejected;
  /**
   * The cart server handed this device a new, empty cart: the cart it had expired after the
   * operator's retention, or your backend erased the user. The change with the new cart
   * follows; the panel tells the shopper. Once per notice.
   */
  expired: CartsyncExpired;
  /** The shopper confirmed the cart in the panel. */
  checkout: CartsyncCheckout;
  /** The panel opened. */
  open: undefined;
  /** The panel closed (or was destroyed while open). */
  close: undefined;
  /**
   * The embed cannot work: a bad configuration (no_mount, not_configured), or an unreachable cart
   * server. A handler subscribed while it cannot work is called at once with the error.
   */
  error: CartsyncError;
}

export type CartsyncEvent = keyof CartsyncEvents;

export interface CartsyncMountOptions {
  /** The cart server's origin; default: data-server, or the origin embed.js was loaded from. */
  server?: string;
  /** Where confirming the cart goes; default: data-checkout-url. */
  checkoutUrl?: string;
  /** Open the panel after each successful add(); default: data-open-on-add. */
  openOnAdd?: boolean;
  /**
   * false when the page knows nobody is signed in: the account's cart the device keeps from an
   * earlier page is hidden from the start, not after the 2 s login grace; default:
   * data-signed-in ("false" for false).
   */
  signedIn?: boolean;
}

export interface Cartsync {
  /** The bridge protocol's version. */
  readonly protocol: 1;
  /** Resolves with the cart the first time the widget is ready; rejects only if data-mount is wrong. */
  readonly ready: Promise<CartsyncCart>;
  add(sku: string, quantity?: number, details?: CartsyncDetails & { options?: CartsyncOptions }): Promise<CartsyncCart>;
  setQuantity(sku: string, quantity: number, options?: CartsyncOptions): Promise<CartsyncCart>;
  remove(sku: string, options?: CartsyncOptions): Promise<CartsyncCart>;
  clear(): Promise<CartsyncCart>;
  cart(): Promise<CartsyncCart>;
  open(): Promise<true>;
  close(): Promise<true>;
  login(token: string, options?: { policy?: CartsyncPolicy }): Promise<CartsyncLogin>;
  logout(): Promise<CartsyncLogin>;
  theme(values?: CartsyncTheme): Promise<true>;
  /** Calls handler on each event; returns a function that unsubscribes. */
  on<E extends CartsyncEvent>(event: E, handler: (data: CartsyncEvents[E]) => void): () => void;
  off<E extends CartsyncEvent>(event: E, handler: (data: CartsyncEvents[E]) => void): void;
  /**
   * Puts the cart into an element (or the first match of a selector),
   * destroying a previous mount first. Throws a CartsyncError (no_mount,
   * not_configured) if it cannot.
   */
  mount(target: string | Element, options?: CartsyncMountOptions): void;
  /** Removes the frame and every listener and timer embed.js added; calls not yet sent wait for the next mount(). */
  destroy(): void;
  /** The class of every error: err instanceof cartsync.Error. */
  readonly Error: CartsyncErrorConstructor;
}

export interface CartsyncAddedDetail {
  sku: string;
  cart: CartsyncCart;
}

export interface CartsyncErrorDetail {
  sku: string;
  error: CartsyncError;
}

declare global {
  interface Window {
    /** Set by embed.js as soon as it runs; see the cartsync:load event. */
    cartsync?: Cartsync;
  }
  interface WindowEventMap {
    'cartsync:load': CustomEvent<Cartsync>;
  }
  interface GlobalEventHandlersEventMap {
    'cartsync:added': CustomEvent<CartsyncAddedDetail>;
    'cartsync:error': CustomEvent<CartsyncErrorDetail>;
  }
}
