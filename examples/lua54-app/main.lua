-- Needs Lua 5.3 or later: // and math.type; utf8 is a standard library.
local rounds = tonumber(arg[1]) or 1

for i = 1, rounds do
  local half = 7 // 2
  print(string.format("hello from lua54-app on %s (7 // 2 = %d, a %s; %s, round %d)",
    _VERSION, half, math.type(half), utf8.char(0x2713), i))
  if i < rounds then os.execute("sleep 1") end
end
