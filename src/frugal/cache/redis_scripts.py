"""The Redis store's writes that touch several keys, as Lua scripts: replicas never see half
an entry.

Keys, under the store's prefix: ``lru`` (ids by use, ranked by the ``seq`` counter so that every
replica shares one order), ``expiry`` (ids by ``expires_at``), ``stats`` (evictions,
expirations) and each entry's hash (the entry prefix followed by the id). Register each script
with ``client.register_script``; the comment above it names its KEYS and ARGV.
"""

# Removes ids (entry hash and both sorted sets); returns how many hashes existed.
# KEYS: lru, expiry, entry prefix. ARGV: the ids.
REMOVE = """
local removed = 0
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  removed = removed + redis.call('DEL', KEYS[3] .. ARGV[i])
end
return removed
"""

# Purges what expired by the caller's clock; returns how many went.
# KEYS: lru, expiry, entry prefix, stats. ARGV: now.
PURGE = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', KEYS[3] .. id)
end
if #expired > 0 then redis.call('HINCRBY', KEYS[4], 'expirations', #expired) end
return #expired
"""

# Stores one entry. KEYS: lru, expiry, entry prefix (as a key, for the prefix), seq, stats.
# ARGV: id, now, ttl_ms, expires_at, max_entries, number of twins, twin ids..., fields...
PUT = """
local lru, expiry, prefix, seq, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local expires_at, max_entries, twins = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local function remove(victim)
  redis.call('ZREM', lru, victim)
  redis.call('ZREM', expiry, victim)
  return redis.call('DEL', prefix .. victim)
end
remove(id)
for i = 7, 6 + twins do remove(ARGV[i]) end
local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
for _, victim in ipairs(expired) do remove(victim) end
local expirations = #expired
local evictions = 0
if ttl_ms <= 0 then
  expirations = expirations + 1  -- born expired: counted, never kept
else
  local key = prefix .. id
  redis.call('HSET', key, unpack(ARGV, 7 + twins))
  redis.call('PEXPIRE', key, ttl_ms)
  redis.call('ZADD', lru, redis.call('INCR', seq), id)
  redis.call('ZADD', expiry, expires_at, id)
  local over = redis.call('ZCARD', lru) - max_entries
  if over > 0 then
    local victims = redis.call('ZPOPMIN', lru, over)
    for i = 1, #victims, 2 do
      redis.call('ZREM', expiry, victims[i])
      evictions = evictions + redis.call('DEL', prefix .. victims[i])
    end
  end
end
if expirations > 0 then redis.call('HINCRBY', stats, 'expirations', expirations) end
if evictions > 0 then redis.call('HINCRBY', stats, 'evictions', evictions) end
return {expirations, evictions}
"""

# Counts a hit on a live entry and makes it the most recently used; nothing for a gone one.
# KEYS: the entry's hash, lru, seq. ARGV: id, now.
HIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'hits', 1)
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1])
return 1
"""

# Gives entries a new vector and model in place (their TTL, hits and LRU rank untouched), each
# only while it still holds the model it was listed with (a hash without one: the base
# model's); returns how many changed.
# KEYS: entry prefix. ARGV: new model, its tag, the base model's id, then per entry: id, the
# model it was listed with, its new vector.
REEMBED = """
local model, model_tag, base = ARGV[1], ARGV[2], ARGV[3]
local changed = 0
for i = 4, #ARGV, 3 do
  local key = KEYS[1] .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    local held = redis.call('HGET', key, 'model') or base
    if held == ARGV[i + 1] and held ~= model then
      redis.call('HSET', key, 'vector', ARGV[i + 2], 'model', model, 'model_tag', model_tag)
      changed = changed + 1
    end
  end
end
return changed
"""
