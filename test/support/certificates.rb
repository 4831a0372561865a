# frozen_string_literal: true

require "openssl"

# A throwaway CA with a server certificate (127.0.0.1, localhost) and a
# client certificate, written as PEM files for ssl_bind tests. Made fresh for
# each run: no key material lives in the repository.
module Certificates
  module_function

  def write(dir)
    ca_key = OpenSSL::PKey::RSA.new(2048)
    ca = certificate("rustpuma test CA", ca_key, nil, ca_key, [
                       ["basicConstraints", "CA:TRUE", true], ["keyUsage", "keyCertSign,cRLSign", true]
                     ])
    server_key = OpenSSL::PKey::RSA.new(2048)
    server = certificate("localhost", server_key, ca, ca_key, [
                           ["subjectAltName", "IP:127.0.0.1,DNS:localhost", false],
                           ["extendedKeyUsage", "serverAuth", false]
                         ])
    client_key = OpenSSL::PKey::RSA.new(2048)
    client = certificate("rustpuma test client", client_key, ca, ca_key, [["extendedKeyUsage", "clientAuth", false]])

    files = {
      ca: [ca.to_pem], cert: [server.to_pem], key: [server_key.to_pem],
      client_cert: [client.to_pem], client_key: [client_key.to_pem]
    }
    files.to_h do |name, (pem)|
      path = File.join(dir, "#{name}.pem")
      File.write(path, pem)
      [name, path]
    end
  end

  def certificate(common_name, key, issuer, issuer_key, extensions)
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = rand(1 << 62)
    cert.subject = OpenSSL::X509::Name.parse("/CN=#{common_name}")
    cert.issuer = issuer ? issuer.subject : cert.subject
    cert.public_key = key.public_key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    factory = OpenSSL::X509::ExtensionFactory.new
    factory.subject_certificate = cert
    factory.issuer_certificate = issuer || cert
    extensions.each { |name, value, critical| cert.add_extension(factory.create_extension(name, value, critical)) }
    cert.sign(issuer_key, OpenSSL::Digest.new("SHA256"))
    cert
  end
end
