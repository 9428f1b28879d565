-- settle: add each rule's cost without a check (negative gives back), and replace a budget reservation
-- by the actual cost. Same algorithm as MemoryState.settle (state/memory.py).
-- KEYS: rate keys (n_rules); then, with a budget: ledger hash, ledger expiry zset, window counters
-- ARGV: n_rules, (limit, period_ms, cost) per rule; then, with a budget:
--       reservation id, actual usd, ttl seconds per window
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n_rules = tonumber(ARGV[1])

for i = 1, n_rules do
  local a = 2 + 3 * (i - 1)
  local limit, period, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if cost ~= 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local new_tat = tat + cost * period / limit
    if new_tat > now then
      redis.call('SET', KEYS[i], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end

if #KEYS > n_rules then
  local ledger, expiry = KEYS[n_rules + 1], KEYS[n_rules + 2]
  local b = 2 + 3 * n_rules
  local rid, actual = ARGV[b], tonumber(ARGV[b + 1])
  local held = redis.call('HGET', ledger, rid)
  if held then
    local reserved = tonumber(redis.call('HGET', ledger, '~reserved') or '0') - tonumber(held)
    if reserved < 0 or redis.call('HLEN', ledger) <= 2 then reserved = 0 end
    redis.call('HDEL', ledger, rid)
    redis.call('ZREM', expiry, rid)
    redis.call('HSET', ledger, '~reserved', string.format('%.17g', reserved))
  end
  if actual > 0 then
    for j = 1, #KEYS - n_rules - 2 do
      local window = KEYS[n_rules + 2 + j]
      -- an unseeded window is seeded later from the request log, which has this cost
      if redis.call('EXISTS', window) == 1 then
        redis.call('INCRBYFLOAT', window, string.format('%.17g', actual))
        redis.call('EXPIRE', window, tonumber(ARGV[b + 1 + j]))
      end
    end
  end
end
return 'ok'
