-- Drives clamgate's milter with one message, as an MTA would, and checks the
-- filter's decision at end of message. Parameters (miltertest -D name=value):
--   socket      where the milter listens: unix:/path or inet:port@127.0.0.1
--   content     "clean" or "eicar" (an EICAR attachment)
--   expect      accept, reject, discard, quarantine or tempfail
--   reply_code  with reject/tempfail: the SMTP code, e.g. 550
--   reply_text  with reject/tempfail: the whole reply text, enhanced code
--               included, e.g. "5.7.1 Virus found: Eicar-Test-Signature"
--   status      when set: the X-Virus-Status value that must be added
--   filler      when set: this many bytes of random text lines go before the
--               attachment, so that the message streams to clamd in chunks
--   count       messages sent one after another on the connection (default 1)
--   attachment  when set: a file whose bytes (base64 lines) go as a zip attachment

local eicar = [[X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*]]

-- miltertest exits 1 without a word on error() (and loses what mt.echo
-- buffered): say why on stderr first.
local function fail(why)
	io.stderr:write("FAIL: " .. why .. "\n")
	error(why)
end

local function check(err, what)
	if err ~= nil then
		fail(what .. ": " .. err)
	end
end

local conn = mt.connect(socket, 20, 0.1)
if conn == nil then
	fail("cannot connect to " .. socket)
end
mt.set_timeout(30)

local function one(n)
	mt.macro(conn, SMFIC_MAIL, "i", "QID" .. n)
	check(mt.mailfrom(conn, "<sender@example.org>"), "mailfrom")
	-- No RCPT: the filter negotiates it away (miltertest would fail the call).
	check(mt.header(conn, "From", "sender@example.org"), "header From")
	check(mt.header(conn, "To", "rcpt@example.net"), "header To")
	check(mt.header(conn, "Subject", "test " .. n), "header Subject")
	check(mt.header(conn, "MIME-Version", "1.0"), "header MIME-Version")
	check(mt.header(conn, "Content-Type", "multipart/mixed; boundary=\"b1\""), "header Content-Type")
	if status ~= nil then
		-- A sender's own verdict must not survive next to the filter's.
		check(mt.header(conn, "X-Virus-Status", "Clean (forged by the sender)"), "header forged X-Virus-Status")
	end
	if not mt.test_option(conn, SMFIP_NOEOH) then
		check(mt.eoh(conn), "eoh")
	end
	check(mt.bodystring(conn, "--b1\r\nContent-Type: text/plain\r\n\r\nHello, this is a test.\r\n"), "body")
	if filler ~= nil then
		check(mt.bodyrandom(conn, tonumber(filler)), "body filler")
	end
	if content == "eicar" then
		check(mt.bodystring(conn, "--b1\r\nContent-Type: application/octet-stream\r\n" ..
			"Content-Disposition: attachment; filename=\"eicar.com\"\r\n\r\n" .. eicar .. "\r\n"), "body eicar")
	end
	if attachment ~= nil then
		local f = io.open(attachment, "rb")
		if f == nil then
			fail("cannot open " .. attachment)
		end
		local b64 = f:read("*a")
		f:close()
		check(mt.bodystring(conn, "--b1\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n" ..
			"Content-Disposition: attachment; filename=\"archive.zip\"\r\n\r\n" .. b64 .. "\r\n"), "body attachment")
	end
	check(mt.bodystring(conn, "--b1--\r\n"), "body end")
	check(mt.eom(conn), "eom")

	local r = mt.getreply(conn)
	if expect == "accept" or expect == "quarantine" then
		if r ~= SMFIR_ACCEPT then
			fail("message " .. n .. ": want accept, got reply " .. string.char(r))
		end
	elseif expect == "discard" then
		if r ~= SMFIR_DISCARD then
			fail("message " .. n .. ": want discard, got reply " .. string.char(r))
		end
	elseif expect == "reject" or expect == "tempfail" then
		if r ~= SMFIR_REPLYCODE then
			fail("message " .. n .. ": want an SMTP reply, got reply " .. string.char(r))
		end
		if not mt.eom_check(conn, MT_SMTPREPLY, reply_code, string.sub(reply_text, 1, 5), string.sub(reply_text, 7)) then
			fail("message " .. n .. ": want reply " .. reply_code .. " " .. reply_text)
		end
	else
		fail("unknown expect " .. tostring(expect))
	end
	local quarantined = mt.eom_check(conn, MT_QUARANTINE)
	if (expect == "quarantine") ~= quarantined then
		fail("message " .. n .. ": quarantined=" .. tostring(quarantined) .. ", want " .. tostring(expect == "quarantine"))
	end
	if status ~= nil and status ~= "" then
		if not mt.eom_check(conn, MT_HDRCHANGE, "X-Virus-Status", "") then
			fail("message " .. n .. ": the sender's X-Virus-Status was not removed")
		end
		if not mt.eom_check(conn, MT_HDRADD, "X-Virus-Status", status) then
			fail("message " .. n .. ": X-Virus-Status " .. status .. " not added (got " .. tostring(mt.getheader(conn, "X-Virus-Status", 0)) .. ")")
		end
		if string.sub(status, 1, 3) ~= "Not" and not mt.eom_check(conn, MT_HDRADD, "X-Virus-Scanned") then
			fail("message " .. n .. ": X-Virus-Scanned not added")
		end
	elseif mt.eom_check(conn, MT_HDRADD) then
		fail("message " .. n .. ": a header was added without add_header")
	end
end

local ok, err = pcall(function()
	for n = 1, tonumber(count or "1") do
		one(n)
	end
end)
if not ok then
	fail(tostring(err))
end
mt.disconnect(conn)
