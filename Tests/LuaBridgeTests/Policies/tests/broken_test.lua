test("x", function() end)
local = 1
