-- Needs Lua 5.1: unpack() is a global and setfenv() exists (both gone in 5.2+).
local rounds = tonumber(arg[1]) or 1

local function greet(name, version)
  return string.format("hello from %s on %s", name, version)
end

-- Run greet with an environment of its own (Lua 5.1's setfenv).
local sandboxed = setfenv(function() return greet_in_sandbox end, { greet_in_sandbox = "sandboxed" })

for i = 1, rounds do
  print(greet(unpack({ "lua51-app", _VERSION })) .. " (" .. sandboxed() .. ", round " .. i .. ")")
  if i < rounds then os.execute("sleep 1") end
end
