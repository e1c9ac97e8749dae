package providers

// The simulators' Redis keys. Every key of one provider carries the hash tag
// {sim:<provider>}, so that a provider's keys share one Redis Cluster slot
// and each Lua script touches a single slot:
//
//	{sim:<provider>}:answer:<op>:<idempotency key>  hash: status, body of the first answer
//	{sim:<provider>}:inprogress:<op>:<idempotency key>
//	                                                string: the token of the call holding the
//	                                                key in progress; expires a little after
//	                                                the hold
//	{sim:<provider>}:ledger                         list: LedgerEntry JSON, in the order applied
//	{sim:<provider>}:ledger:order:<order_id>        list: the same entries, for one order
//	{sim:<provider>}:calls                          list: CallEvent JSON, each call's start and
//	                                                end, in time order (SimConfig.CallLog)
//	{sim:inventory}:stock                           hash: sku -> units available (limited SKUs only)
//	                                                at the default warehouse
//	{sim:inventory}:stock:wh:<warehouse>            the same, at a named warehouse
//	{sim:inventory}:initial_stock                   string: the last InitialStock > 0 configured
//	{sim:inventory}:reservation:<reservation_id>    hash: order_id, state (reserved|released),
//	                                                warehouse (when named), took:<sku> -> units
//	                                                taken from limited stock
//	{sim:payment}:transaction:<transaction_id>      hash: order_id, refund (the ID of its refund,
//	                                                once refunded)
//	{sim:shipping}:shipment:<shipment_id>           hash: order_id, tracking_number, created_ms,
//	                                                duration_ms, undeliverable ("1" or "0")
//
// Nothing else expires: the ledgers are the truth that tests and audits
// read.

// simKeys builds the key names of one simulated provider.
type simKeys struct{ prefix string }

// keysOf returns the key builder of a provider.
func keysOf(provider string) simKeys { return simKeys{prefix: "{sim:" + provider + "}:"} }

// inventoryKeys builds the inventory keys, including the stock keys only
// inventory has.
var inventoryKeys = keysOf(ProviderInventory)

// answer is the hash holding the first answer to an idempotency key.
func (k simKeys) answer(op, idempotencyKey string) string {
	return k.prefix + "answer:" + op + ":" + idempotencyKey
}

// inProgress is the marker of a call holding an idempotency key in
// progress.
func (k simKeys) inProgress(op, idempotencyKey string) string {
	return k.prefix + "inprogress:" + op + ":" + idempotencyKey
}

// ledger is the provider's list of all its ledger entries.
func (k simKeys) ledger() string { return k.prefix + "ledger" }

// orderLedger is the provider's list of one order's ledger entries.
func (k simKeys) orderLedger(orderID string) string { return k.prefix + "ledger:order:" + orderID }

// stock is inventory's hash of available units per limited SKU at
// warehouse; "" is the default warehouse.
func (k simKeys) stock(warehouse string) string {
	if warehouse == "" {
		return k.prefix + "stock"
	}
	return k.prefix + "stock:wh:" + warehouse
}

// initialStock holds the initial stock per SKU a simulator last applied.
func (k simKeys) initialStock() string { return k.prefix + "initial_stock" }

// reservation is inventory's record of one reservation.
func (k simKeys) reservation(id string) string { return k.prefix + "reservation:" + id }

// shipment is shipping's record of one long-running shipment.
func (k simKeys) shipment(id string) string { return k.prefix + "shipment:" + id }

// transaction is payment's record of one charge, which lets a refund find
// it and refund it at most once.
func (k simKeys) transaction(id string) string { return k.prefix + "transaction:" + id }
