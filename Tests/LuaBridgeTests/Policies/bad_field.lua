return { dchp = function() end }
