# frozen_string_literal: true

require "support/helper"
require "etc"
require "fileutils"
require "json"
require "net/http"
require "tmpdir"

# The README's nginx section, for real: Debian's nginx proxies to rustpuma
# on a unix socket. When the test runs as root, nginx's workers run as
# `nobody` (as www-data in production), another user than the server's, so
# the socket must be connectable by anyone (Puma binds it with umask 0).
class TestNginxUnixSocket < Minitest::Test
  NGINX = "/usr/sbin/nginx"

  def setup
    skip "nginx is not installed (bin/setup installs nginx-light)" unless File.executable?(NGINX)
    @dir = Dir.mktmpdir("rustpuma-nginx")
    File.chmod(0o755, @dir) # nginx's worker user must reach the socket
    @socket = File.join(@dir, "app.sock")
    @port = ServerProcess.free_port
  end

  def teardown
    stop_nginx
    @server&.stop
    FileUtils.rm_rf(@dir) if @dir
  end

  def test_nginx_proxies_to_a_rustpuma_unix_socket
    @server = ServerProcess.new(File.join(FIXTURES, "app.ru"), bind: "unix://#{@socket}").start
    assert_equal 0o777, File.stat(@socket).mode & 0o777, "a unix socket anyone can connect to, as Puma's"

    start_nginx
    response = Net::HTTP.get_response(URI("http://127.0.0.1:#{@port}/env"))
    assert_equal "200", response.code, "nginx answered #{response.code}; its error log:\n#{File.read(File.join(@dir, 'error.log'))}"
    env = JSON.parse(response.body)
    assert_equal "/env", env["PATH_INFO"]
  end

  private

  def start_nginx
    user = Process.uid.zero? ? "user nobody #{Etc.getgrgid(Etc.getpwnam('nobody').gid).name};" : ""
    conf = File.join(@dir, "nginx.conf")
    File.write(conf, <<~NGINX)
      daemon off;
      worker_processes 1;
      pid #{@dir}/nginx.pid;
      error_log #{@dir}/error.log;
      #{user}
      events { worker_connections 64; }
      http {
        access_log off;
        client_body_temp_path #{@dir}/body;
        proxy_temp_path #{@dir}/proxy;
        fastcgi_temp_path #{@dir}/fastcgi;
        uwsgi_temp_path #{@dir}/uwsgi;
        scgi_temp_path #{@dir}/scgi;
        upstream app { server unix:#{@socket}; }
        server {
          listen 127.0.0.1:#{@port};
          location / {
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_pass http://app;
          }
        }
      }
    NGINX
    @nginx = Process.spawn(NGINX, "-p", @dir, "-e", File.join(@dir, "error.log"), "-c", conf,
                           out: File::NULL, err: File.join(@dir, "nginx.stderr"), pgroup: true)
    wait_for_port
  end

  # Ready once its port accepts connections (bounded; polling a port).
  def wait_for_port
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    begin
      TCPSocket.new("127.0.0.1", @port).close
    rescue Errno::ECONNREFUSED
      if Process.waitpid(@nginx, Process::WNOHANG)
        flunk "nginx exited: #{File.read(File.join(@dir, 'nginx.stderr'))}"
      end
      flunk "nginx did not listen within 10 s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.05
      retry
    end
  end

  def stop_nginx
    return unless @nginx

    Process.kill("QUIT", @nginx)
    Timeout.timeout(10) { Process.wait(@nginx) }
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  rescue Timeout::Error
    Process.kill("KILL", -@nginx) rescue nil
  end
end
