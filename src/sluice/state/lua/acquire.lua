-- acquire: check every GCRA rate rule and every budget window, then consume all of them or none.
-- Same algorithm as MemoryState.acquire (state/memory.py). Times are milliseconds of the Redis clock,
-- so replicas with skewed clocks still share one timeline.
-- KEYS: rate keys (n_rules); then, with a budget: ledger hash, ledger expiry zset, window counters
-- ARGV: n_rules, (limit, period_ms, cost) per rule; then, with a budget:
--       reservation id, amount usd, hold ms, ledger ttl ms, limit usd ('' = count only) per window
-- Returns {'ok', used ratio | ''} | {'rate', rule, retry ms | '-1'} | {'budget', window, spent, reserved, limit}
--       | {'unseeded', window, ...} (1-based indexes)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n_rules = tonumber(ARGV[1])
local has_budget = #KEYS > n_rules
local ledger, expiry = KEYS[n_rules + 1], KEYS[n_rules + 2]
local n_windows = has_budget and (#KEYS - n_rules - 2) or 0
local b = 2 + 3 * n_rules  -- first budget argument

local missing = {}
for j = 1, n_windows do
  if redis.call('EXISTS', KEYS[n_rules + 2 + j]) == 0 then missing[#missing + 1] = tostring(j) end
end
if #missing > 0 then return {'unseeded', unpack(missing)} end

local tats = {}
for i = 1, n_rules do
  local a = 2 + 3 * (i - 1)
  local limit, period, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + cost * period / limit
  local over = new_tat - now - period
  if over > 0.001 then
    if cost > limit then return {'rate', tostring(i), '-1'} end
    return {'rate', tostring(i), string.format('%.3f', over)}
  end
  tats[i] = new_tat
end

local ratio = ''
if has_budget then
  local rid, amount, hold, ledger_ttl = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local reserved = tonumber(redis.call('HGET', ledger, '~reserved') or '0')
  local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
  if #expired > 0 then
    for _, old in ipairs(expired) do
      reserved = reserved - tonumber(redis.call('HGET', ledger, old) or '0')
      redis.call('HDEL', ledger, old)
    end
    redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now)
    if reserved < 0 then reserved = 0 end
    redis.call('HSET', ledger, '~reserved', string.format('%.17g', reserved))
  end
  local used = 0
  for j = 1, n_windows do
    local limit = ARGV[b + 3 + j]
    if limit ~= '' then
      limit = tonumber(limit)
      local spent = tonumber(redis.call('GET', KEYS[n_rules + 2 + j]))
      if spent + reserved + amount > limit + 1e-9 then
        return {'budget', tostring(j), string.format('%.17g', spent), string.format('%.17g', reserved),
                string.format('%.17g', limit)}
      end
      local r = 1
      if limit > 0 then r = (spent + reserved + amount) / limit end
      if r > used then used = r end
    end
  end
  ratio = string.format('%.6f', used)
  if amount > 0 then
    redis.call('HSET', ledger, rid, string.format('%.17g', amount), '~reserved', string.format('%.17g', reserved + amount))
    redis.call('ZADD', expiry, now + hold, rid)
    redis.call('PEXPIRE', ledger, ledger_ttl)
    redis.call('PEXPIRE', expiry, ledger_ttl)
  end
end

for i = 1, n_rules do
  redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX', math.ceil(tats[i] - now) + 1000)
end
return {'ok', ratio}
