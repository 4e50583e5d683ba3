// The PostgreSQL JDBC driver (Debian's libpostgresql-jdbc-java) through the sod demo gateway:
// server-side prepare after prepareThreshold executions, fetch-size portals, DatabaseMetaData,
// batches. Run with `java -cp /usr/share/java/postgresql.jar Jdbc.java <role>`; prints one JSON
// line per step, as the Python scripts do.

import java.sql.*;
import java.util.*;

public class Jdbc {
    interface Step { Object run() throws SQLException; }

    static String json(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\t", "\\t") + "\"";
    }

    static void run(String step, Step s) {
        try {
            Object v = s.run();
            System.out.println("{\"step\": " + json(step) + ", \"ok\": true, \"value\": " + json(String.valueOf(v)) + "}");
        } catch (SQLException e) {
            System.out.println("{\"step\": " + json(step) + ", \"ok\": false, \"sqlstate\": " + json(String.valueOf(e.getSQLState())) + ", \"message\": " + json(String.valueOf(e.getMessage())) + "}");
        }
    }

    static List<List<String>> rows(ResultSet rs) throws SQLException {
        List<List<String>> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) row.add(rs.getString(i));
            out.add(row);
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + System.getenv("SOD_PORT") + "/" + System.getenv("SOD_DB") + "?connectTimeout=10&socketTimeout=60";
        Properties p = new Properties();
        p.setProperty("user", "agent");
        p.setProperty("password", System.getenv("SOD_TOKEN"));
        try (Connection c = DriverManager.getConnection(url, p)) {
            run("prepare-threshold", () -> {
                // The sixth execution runs as a named server-side statement.
                List<Object> seen = new ArrayList<>();
                try (PreparedStatement ps = c.prepareStatement("SELECT id, name, email FROM customers WHERE id = ?")) {
                    for (int i = 1; i <= 7; i++) {
                        ps.setInt(1, i);
                        try (ResultSet rs = ps.executeQuery()) { seen.add(rows(rs)); }
                    }
                }
                return seen;
            });
            run("fetch-size", () -> {
                c.setAutoCommit(false);
                try (Statement s = c.createStatement()) {
                    s.setFetchSize(25);
                    try (ResultSet rs = s.executeQuery("SELECT id, name, phone FROM customers ORDER BY id")) {
                        List<List<String>> r = rows(rs);
                        return r.size() + " " + r.get(0);
                    }
                } finally {
                    c.rollback();
                    c.setAutoCommit(true);
                }
            });
            run("metadata", () -> {
                DatabaseMetaData md = c.getMetaData();
                List<String> out = new ArrayList<>();
                try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                    while (rs.next()) out.add(rs.getString("TABLE_NAME"));
                }
                try (ResultSet rs = md.getColumns(null, "public", "customers", "%")) {
                    while (rs.next()) out.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                }
                try (ResultSet rs = md.getPrimaryKeys(null, "public", "orders")) {
                    while (rs.next()) out.add("pk:" + rs.getString("COLUMN_NAME"));
                }
                try (ResultSet rs = md.getImportedKeys(null, "public", "orders")) {
                    while (rs.next()) out.add("fk:" + rs.getString("FKCOLUMN_NAME") + "->" + rs.getString("PKTABLE_NAME"));
                }
                return out;
            });
            run("batch", () -> {
                c.setAutoCommit(false);
                try (PreparedStatement ps = c.prepareStatement("UPDATE orders SET status = ? WHERE id = ?")) {
                    for (int i = 1; i <= 3; i++) {
                        ps.setString(1, "shipped");
                        ps.setInt(2, i);
                        ps.addBatch();
                    }
                    return Arrays.toString(ps.executeBatch());
                } finally {
                    c.rollback();
                    c.setAutoCommit(true);
                }
            });
        }
    }
}
