// An Iceberg REST catalog on 127.0.0.1 for the tests (tests/support/iceberg_rest.py runs it with
// `java -cp <jars from pom.xml> RestCatalogServer.java key=value ...`, Java's source launcher).
//
// Iceberg's own RESTCatalogAdapter + RESTCatalogServlet (the server its REST compatibility kit
// tests) in front of any Iceberg catalog built from the key=value arguments (catalog-impl, uri,
// warehouse, io-impl, ...). Unlike Iceberg's RESTCatalogServer it binds 127.0.0.1 only, on port
// 0 unless rest.port is given, and prints "listening <port>" once it serves. Given rest.token,
// every request but the OAuth token exchange must carry that bearer token: the client's
// credentials are checked, not just accepted.
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.Map;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public class RestCatalogServer {
  public static void main(String[] args) throws Exception {
    Map<String, String> props = new HashMap<>();
    for (String arg : args) {
      int eq = arg.indexOf('=');
      if (eq <= 0) {
        throw new IllegalArgumentException("expected key=value, got " + arg);
      }
      props.put(arg.substring(0, eq), arg.substring(eq + 1));
    }
    int port = Integer.parseInt(props.getOrDefault("rest.port", "0"));
    String token = props.remove("rest.token");
    Catalog catalog = CatalogUtil.buildIcebergCatalog("rest_backend", props, null);
    RESTCatalogServlet servlet =
        new RESTCatalogServlet(new RESTCatalogAdapter(catalog)) {
          @Override
          protected void service(HttpServletRequest request, HttpServletResponse response)
              throws java.io.IOException, jakarta.servlet.ServletException {
            boolean exchange = request.getRequestURI().endsWith("/oauth/tokens");
            String given = request.getHeader("Authorization");
            if (token != null && !exchange && !("Bearer " + token).equals(given)) {
              response.sendError(401, "a bearer token is required");
              return;
            }
            super.service(request, response);
          }
        };
    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(servlet), "/*");
    Server server = new Server(new InetSocketAddress("127.0.0.1", port));
    server.setHandler(context);
    server.start();
    int bound = ((ServerConnector) server.getConnectors()[0]).getLocalPort();
    System.out.println("listening " + bound);
    System.out.flush();
    server.join();
  }
}
