local s = "x" for i = 1, 200000 do s = s .. #s end
return {}
